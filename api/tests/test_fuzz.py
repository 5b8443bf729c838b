"""Fuzzing against the service's own OpenAPI schema: no generated input may produce a 5xx."""

from __future__ import annotations

import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from digit_api.config import Settings
from digit_api.main import create_app

SHIPPED = Path(__file__).resolve().parents[1] / "models"

# POST /feedback is fuzzed too: its rows go to a scratch database, never the repository's var/.
DATABASE = tempfile.TemporaryDirectory(prefix="fuzz-feedback-")
app = create_app(
    Settings(model_dir=SHIPPED, reload_interval=0, database_url=f"sqlite:///{DATABASE.name}/feedback.sqlite3")
)
# Schemathesis calls the app without running its lifespan: load the model the way the lifespan does.
app.state.store.refresh()
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_input_produces_a_server_error(case) -> None:
    response = case.call()
    case.validate_response(response, checks=[not_a_server_error])
    # Errors are JSON bodies, never a bare text page.
    if response.status_code >= 400:
        assert response.json()
