"""People's verdicts on the model's answers: POST /feedback stores one, GET /feedback/stats sums them up.

The database is reached from a few threads of its own with bounded waits: when it hangs or is
down, these routes answer 503 and the prediction routes, which never touch it, are unaffected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, ParamSpec, TypeVar

import anyio
import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import TypeAdapter

from digit_api.deps import MetricsDep, Model, Store, json_body, openapi_body
from digit_api.feedback_store import FeedbackStore, FeedbackUnavailable
from digit_api.schemas import PROBLEMS, FeedbackIn, FeedbackOut, FeedbackStats, Problem
from digit_release.feedback import to_uint8

router = APIRouter(tags=["feedback"])
FEEDBACK_BODY = TypeAdapter(FeedbackIn)
# Threads that may wait on the database at once; requests beyond wait at most QUEUE_SECONDS.
DATABASE_THREADS = 4
QUEUE_SECONDS = 5.0
P = ParamSpec("P")
T = TypeVar("T")


async def get_feedback_store(request: Request) -> FeedbackStore:
    store: FeedbackStore = request.app.state.feedback
    return store


FeedbackStoreDep = Annotated[FeedbackStore, Depends(get_feedback_store)]


async def in_database_thread(request: Request, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a blocking store call on the database's own threads; FeedbackUnavailable -> 503."""
    limiter: anyio.CapacityLimiter = request.app.state.feedback_limiter
    try:
        with anyio.fail_after(QUEUE_SECONDS):
            await limiter.acquire()
    except TimeoutError:
        raise HTTPException(
            503,
            "feedback cannot be stored right now: the database is slow to answer; predictions are not affected",
            headers={"Retry-After": "5"},
        ) from None
    try:
        return await anyio.to_thread.run_sync(lambda: call(*args, **kwargs), abandon_on_cancel=False)
    except FeedbackUnavailable as exc:
        raise HTTPException(
            503,
            f"feedback cannot be stored right now, try again later (predictions are not affected): {exc}",
            headers={"Retry-After": "5"},
        ) from None
    finally:
        limiter.release()


@router.post(
    "/feedback",
    status_code=201,
    response_model=FeedbackOut,
    responses={200: {"model": FeedbackOut, "description": "already stored"}, **PROBLEMS},
    openapi_extra=openapi_body(FEEDBACK_BODY),
)
async def post_feedback(
    body: Annotated[FeedbackIn, Depends(json_body(FEEDBACK_BODY))],
    model: Model,
    *,
    feedback: FeedbackStoreDep,
    metrics: MetricsDep,
    request: Request,
    response: Response,
) -> dict[str, Any]:
    """A person's verdict on a drawing: `{"pixels": [784 numbers], "label": 7, "request_id": "..."}`."""
    if str(body.label) not in model.labels:
        raise HTTPException(422, f"label: {body.label} is not one of the model's labels {', '.join(model.labels)}")
    pixels = to_uint8(body.pixels)
    if not pixels.any():
        raise HTTPException(422, "pixels: the drawing is empty (no pixel above 0.5), nothing to learn from")
    # The model's own answer on the very bytes that are stored: a client's claim is never taken.
    [probabilities] = model.predict(pixels.astype(np.float32)[None])
    prediction = int(model.labels[int(probabilities.argmax())])
    stored = await in_database_thread(
        request,
        feedback.add,
        pixels=pixels,
        label=body.label,
        prediction=prediction,
        probabilities=probabilities.tolist(),
        model_name=model.manifest.name,
        model_version=model.version,
        request_id=body.request_id,
    )
    confirmed = body.label == prediction
    outcome = ("confirmed" if confirmed else "corrected") if stored.stored else "duplicate"
    metrics.feedback.labels(model.version, outcome).inc()
    response.status_code = 201 if stored.stored else 200
    response.headers["X-Model-Version"] = model.version
    return {
        "id": stored.id,
        "stored": stored.stored,
        "label": body.label,
        "prediction": prediction,
        "confirmed": confirmed,
        "model_version": model.version,
        "heard": stored.heard.as_dict(),
    }


@router.get("/feedback/stats", response_model=FeedbackStats, responses={503: {"model": Problem}})
async def feedback_stats(store: Store, feedback: FeedbackStoreDep, request: Request) -> dict[str, Any]:
    """Per model version: confirmed, corrected, live accuracy and the confusion matrix."""
    version = store.version
    labels = {version: store.current().labels} if version else {}
    versions = await in_database_thread(request, feedback.stats, labels)
    return {
        "model_version": version,
        "versions": [
            {**v.heard.as_dict(), "labels": v.labels, "confusion_matrix": v.confusion_matrix} for v in versions
        ],
    }
