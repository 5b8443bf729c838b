"""The Open Inference Protocol with the standard clients nobody here wrote, against the running API
and through nginx under /api/: NVIDIA's tritonclient (sync and aio) and kserve's
InferenceRESTClient (in build/kserve-venv: its pins clash with the project's).

Every answer must equal /predict's for the same digits.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import digit_api
from digit_testing.processes import RunningApi, running_api
from digit_testing.tooling import unavailable

from .stack import REPO, nginx_binary, start_nginx, stop

tritonclient_http = pytest.importorskip("tritonclient.http", reason="pip install -r requirements-dev.txt")
tritonclient_aio = pytest.importorskip("tritonclient.http.aio")
from tritonclient.utils import InferenceServerException  # noqa: E402

NAME = "mnist-cnn"
KSERVE_PYTHON = REPO / "build" / "kserve-venv" / "bin" / "python"
KSERVE_SCRIPT = Path(__file__).with_name("kserve_client.py")


def run_apart(coroutine: Any) -> Any:
    """asyncio.run on a thread of its own: the session's Playwright keeps a loop running on this one."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


@pytest.fixture(scope="module")
def proxy(api: RunningApi, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """nginx with the project's config in front of the API; a rate limit these tests stay under."""
    server, process = start_nginx(
        nginx_binary(),
        tmp_path_factory.mktemp("nginx"),
        api.url.removeprefix("http://"),
        rate_limit="1000r/s",
        rate_burst=1000,
    )
    yield server.url
    stop(process)


@pytest.fixture(scope="module", params=["direct", "nginx"])
def base(request, api: RunningApi) -> str:
    """Where the clients point: the API itself, or nginx's /api/."""
    if request.param == "direct":
        return api.url.removeprefix("http://")
    return request.getfixturevalue("proxy").removeprefix("http://") + "/api"


@pytest.fixture(scope="module")
def digits(held_out_digits) -> tuple[np.ndarray, list[int]]:
    images, labels = held_out_digits
    return images[:4], labels[:4].tolist()


@pytest.fixture(scope="module")
def from_predict(api: RunningApi, digits) -> np.ndarray:
    """/predict's probabilities for the four digits: what every client must get back."""
    images, _ = digits
    rows = [
        httpx.post(f"{api.url}/predict", json={"pixels": image.ravel().tolist()}, timeout=10).json() for image in images
    ]
    return np.asarray([row["probabilities"] for row in rows])


def tensor(module, images: np.ndarray, datatype: str, shape: list[int], binary: bool):
    x = images.reshape(shape).astype(np.float32 if datatype == "FP32" else np.uint8)
    inputs = module.InferInput("pixels", shape, datatype)
    inputs.set_data_from_numpy(x, binary_data=binary)
    return inputs


CASES = list(
    itertools.product(["FP32", "UINT8"], ["rows", "images"], [True, False], [True, False], [None, "gzip", "deflate"])
)


# ---- tritonclient, sync ---------------------------------------------------------------------------


def test_tritonclient_health_and_metadata(base: str) -> None:
    client = tritonclient_http.InferenceServerClient(base)
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready(NAME) and client.is_model_ready(NAME, "1")
        assert not client.is_model_ready(NAME, "2") and not client.is_model_ready("resnet")
        server = client.get_server_metadata()
        assert server["version"] == digit_api.__version__
        assert "binary_tensor_data" in server["extensions"]
        model = client.get_model_metadata(NAME, "1")
        assert model == client.get_model_metadata(NAME)
        assert model["inputs"] == [{"name": "pixels", "datatype": "FP32", "shape": [-1, 784]}]
    finally:
        client.close()


@pytest.mark.parametrize("case", CASES, ids=["-".join(str(part) for part in case) for case in CASES])
def test_tritonclient_infer(base: str, digits, from_predict, case) -> None:
    datatype, form, binary_in, binary_out, compression = case
    images, labels = digits
    shape = [4, 784] if form == "rows" else [4, 28, 28, 1]
    client = tritonclient_http.InferenceServerClient(base)
    try:
        result = client.infer(
            NAME,
            [tensor(tritonclient_http, images, datatype, shape, binary_in)],
            model_version="1" if binary_in else "",
            request_id="triton-1",
            outputs=[tritonclient_http.InferRequestedOutput("probabilities", binary_data=binary_out)],
            request_compression_algorithm=compression,
            response_compression_algorithm=compression,
        )
    finally:
        client.close()
    probabilities = result.as_numpy("probabilities")
    assert probabilities.dtype == np.float32 and probabilities.shape == (4, 10)
    assert np.array_equal(probabilities.astype(np.float64), from_predict)
    assert probabilities.argmax(axis=1).tolist() == labels
    response = result.get_response()
    assert response["id"] == "triton-1" and response["model_version"] == "1"


def test_tritonclient_default_outputs_come_back_binary(base: str, digits, from_predict) -> None:
    """Asked for no output by name, tritonclient sets binary_data_output: the whole answer is binary."""
    client = tritonclient_http.InferenceServerClient(base)
    try:
        result = client.infer(NAME, [tensor(tritonclient_http, digits[0], "FP32", [4, 784], True)])
    finally:
        client.close()
    assert "data" not in result.get_output("probabilities")
    assert np.array_equal(result.as_numpy("probabilities").astype(np.float64), from_predict)


@pytest.mark.parametrize(
    ("build", "status", "message"),
    [
        (lambda m, x: m.InferInput("image", [1, 784], "FP32"), "400", "unknown input 'image'"),
        (
            lambda m, x: m.InferInput("pixels", [1, 783], "FP32"),
            "400",
            "input shape must be [N, 784] or [N, 28, 28, 1]",
        ),
        (lambda m, x: m.InferInput("pixels", [1, 784], "INT32"), "400", "datatype must be FP32 or UINT8"),
        (lambda m, x: m.InferInput("pixels", [1, 784], "FP32"), "400", "pixels must be finite numbers from 0 to 255"),
    ],
    ids=["unknown-input", "shape", "datatype", "range"],
)
def test_tritonclient_errors(base: str, build, status: str, message: str) -> None:
    client = tritonclient_http.InferenceServerClient(base)
    try:
        inputs = build(tritonclient_http, None)
        shape = inputs.shape()
        dtype = {"FP32": np.float32, "INT32": np.int32}[inputs.datatype()]
        inputs.set_data_from_numpy(np.full(shape, 300, dtype=dtype))
        with pytest.raises(InferenceServerException) as error:
            client.infer(NAME, [inputs])
        assert error.value.status() == status
        assert message in error.value.message()
    finally:
        client.close()


def test_tritonclient_unknown_output_model_and_version(base: str, digits) -> None:
    client = tritonclient_http.InferenceServerClient(base)
    inputs = [tensor(tritonclient_http, digits[0], "UINT8", [4, 784], True)]
    try:
        with pytest.raises(InferenceServerException) as error:
            client.infer(NAME, inputs, outputs=[tritonclient_http.InferRequestedOutput("logits")])
        assert (error.value.status(), "unknown output 'logits'" in error.value.message()) == ("400", True)
        with pytest.raises(InferenceServerException) as error:
            client.infer(NAME, inputs, model_version="2")
        assert error.value.status() == "404" and "version '2' is not loaded" in error.value.message()
        with pytest.raises(InferenceServerException) as error:
            client.infer("resnet", inputs)
        assert error.value.status() == "404"
    finally:
        client.close()


# ---- tritonclient, aio ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case", [c for c in CASES if c[1] == "rows" or c[4] is None], ids=lambda c: "-".join(map(str, c))
)
def test_tritonclient_aio_infer(base: str, digits, from_predict, case) -> None:
    datatype, form, binary_in, binary_out, compression = case
    images, _ = digits
    shape = [4, 784] if form == "rows" else [4, 28, 28, 1]

    async def run() -> np.ndarray:
        client = tritonclient_aio.InferenceServerClient(base)
        try:
            assert await client.is_server_live() and await client.is_server_ready()
            assert await client.is_model_ready(NAME, "1")
            assert (await client.get_server_metadata())["version"] == digit_api.__version__
            result = await client.infer(
                NAME,
                [tensor(tritonclient_aio, images, datatype, shape, binary_in)],
                outputs=[tritonclient_aio.InferRequestedOutput("probabilities", binary_data=binary_out)],
                request_compression_algorithm=compression,
            )
            with pytest.raises(InferenceServerException) as error:
                await client.infer(
                    NAME, [tensor(tritonclient_aio, images, datatype, shape, binary_in)], model_version="9"
                )
            assert error.value.status() == "404"
            return result.as_numpy("probabilities")
        finally:
            await client.close()

    assert np.array_equal(run_apart(run()).astype(np.float64), from_predict)


# ---- kserve's InferenceRESTClient ----------------------------------------------------------------


def test_kserve_inference_rest_client(base: str, digits, from_predict) -> None:
    if not KSERVE_PYTHON.exists():
        unavailable(f"{KSERVE_PYTHON} is missing: make test installs it (requirements-kserve.txt)")
    images, _ = digits
    job = {"base_url": f"http://{base}", "model": NAME, "digits": images.tolist()}
    result = subprocess.run(
        [str(KSERVE_PYTHON), str(KSERVE_SCRIPT)],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    out = json.loads(result.stdout)
    assert (out["live"], out["ready"], out["model_ready"]) == (True, True, True)
    assert len(out["infer"]) == 16
    for answer in out["infer"]:
        assert answer["id"].startswith("kserve-"), answer["case"]
        assert np.array_equal(np.asarray(answer["probabilities"]), from_predict), answer["case"]
    status, body = out["unknown_input"]
    assert status == 400 and "unknown input 'image'" in body["error"]


# ---- readiness without a model -------------------------------------------------------------------


@pytest.fixture(scope="module")
def api_without_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("no-model")
    with running_api(folder / "models", folder, {"RELOAD_INTERVAL": "0"}, ready=False) as api:
        yield api.url.removeprefix("http://")


def test_without_a_model_the_clients_say_not_ready(api_without_model: str) -> None:
    """The README's choice: 503 (like /readyz), which tritonclient reads as False, not an error."""
    client = tritonclient_http.InferenceServerClient(api_without_model)
    try:
        assert client.is_server_live()
        assert client.is_server_ready() is False
        assert client.is_model_ready(NAME) is False
        assert client.is_model_ready(NAME, "1") is False
        with pytest.raises(InferenceServerException) as error:
            client.infer(
                NAME, [tensor(tritonclient_http, np.zeros((1, 28, 28), dtype=np.uint8), "UINT8", [1, 784], True)]
            )
        assert error.value.status() == "503" and "no model is ready" in error.value.message()
    finally:
        client.close()

    async def aio() -> tuple[bool, bool]:
        client = tritonclient_aio.InferenceServerClient(api_without_model)
        try:
            return await client.is_server_ready(), await client.is_model_ready(NAME)
        finally:
            await client.close()

    assert run_apart(aio()) == (False, False)
