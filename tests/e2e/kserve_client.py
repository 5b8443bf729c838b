"""Drive the V2 routes with kserve's InferenceRESTClient; run by test_inference_clients.py.

It runs in build/kserve-venv (kserve's pins clash with the project's), so it imports nothing from
the project: it reads a JSON job on stdin (base URL, model name, digits) and prints JSON results.
"""

from __future__ import annotations

import asyncio
import json
import sys

import httpx
import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput


async def run(job: dict) -> dict:
    base, name = job["base_url"], job["model"]
    images = np.asarray(job["digits"], dtype=np.uint8)
    out: dict = {"infer": []}
    client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
    try:
        out["live"] = await client.is_server_live(base)
        out["ready"] = await client.is_server_ready(base)
        out["model_ready"] = await client.is_model_ready(base, name)
        for datatype in ("FP32", "UINT8"):
            for shape in ([len(images), 784], [len(images), 28, 28, 1]):
                for binary_in in (True, False):
                    for binary_out in (True, False):
                        x = images.reshape(shape).astype(np.float32 if datatype == "FP32" else np.uint8)
                        tensor = InferInput("pixels", shape, datatype)
                        tensor.set_data_from_numpy(x, binary_data=binary_in)
                        request = InferRequest(
                            model_name=name,
                            infer_inputs=[tensor],
                            request_id=f"kserve-{datatype}-{len(shape)}",
                            request_outputs=[RequestedOutput("probabilities", {"binary_data": binary_out})],
                        )
                        response = await client.infer(base, request, model_name=name)
                        [output] = response.outputs
                        out["infer"].append(
                            {
                                "case": [datatype, shape, binary_in, binary_out],
                                "id": response.id,
                                "probabilities": output.as_numpy().astype(np.float64).tolist(),
                            }
                        )
        bad = InferInput("image", [1, 784], "FP32")
        bad.set_data_from_numpy(np.zeros((1, 784), dtype=np.float32))
        try:
            await client.infer(base, InferRequest(model_name=name, infer_inputs=[bad]), model_name=name)
            out["unknown_input"] = None
        except httpx.HTTPStatusError as exc:
            out["unknown_input"] = [exc.response.status_code, exc.response.json()]
    finally:
        await client.close()
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run(json.load(sys.stdin)))))
