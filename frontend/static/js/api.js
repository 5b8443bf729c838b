// The prediction service, reached with relative URLs: the same page works when the API serves it
// (make run) and behind nginx, which proxies /api/ to the API.

export class ServiceError extends Error {
  // status is 0 when no answer came at all (no network, or the service unreachable).
  constructor(message, status = 0) {
    super(message);
    this.status = status;
  }
}

async function call(path, options = {}, what = "the drawing") {
  let response;
  try {
    response = await fetch(path, options);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ServiceError("The prediction service cannot be reached. Check the connection and try again.");
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    // A proxy's HTML error page or an empty body: the status says enough.
  }
  if (response.ok && body) {
    return { body, version: response.headers.get("X-Model-Version"), requestId: response.headers.get("X-Request-Id") };
  }
  const said = body && (body.detail || body.error);
  if ([502, 504].includes(response.status)) {
    // The proxy answered for a service it could not reach.
    throw new ServiceError("The prediction service cannot be reached. Try again in a moment.", response.status);
  }
  if (response.status === 429) {
    throw new ServiceError("Too many requests: wait a moment, then draw again.", 429);
  }
  if (response.status >= 500) {
    const message = said ? `The service has a problem: ${said}` : `The service answered ${response.status}.`;
    throw new ServiceError(message, response.status);
  }
  throw new ServiceError(
    said ? `The service refused ${what}: ${said}` : `The service answered ${response.status}.`,
    response.status,
  );
}

export function predict(pixels, signal) {
  return call("api/predict", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ pixels: Array.from(pixels) }),
    signal,
  });
}

export function modelInfo() {
  return call("api/model");
}

// A person's verdict: the pixels of the answer, the digit it really is (body from feedbackBody()).
export function sendFeedback(body, signal) {
  return call(
    "api/feedback",
    { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body), signal },
    "the verdict",
  );
}
