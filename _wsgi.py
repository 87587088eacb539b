"""HTTP layer: Label Studio's ML backend protocol on Flask. Routes parse the request, call the backend,
and turn results and errors into JSON; nothing else lives here.

gunicorn targets: `_wsgi:app` (as in Label Studio's backend examples; built on first access, so importing this
module has no side effects) or the factory `_wsgi:create_app()`."""

from __future__ import annotations

import argparse
import base64
import hmac
import json
import logging
import threading
import time
from typing import Any

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from model import TemporalBackend
from utils.service.errors import BackendError, BadRequestError, ForbiddenError, UnauthorizedError
from utils.service.metrics import RequestMetrics
from utils.service.settings import Settings

logger = logging.getLogger("backend.http")


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)s [%(process)d %(name)s] %(message)s",
    )
    logging.getLogger().setLevel(getattr(logging, level, logging.INFO))


def json_body() -> dict[str, Any]:
    """The body as a JSON object, whatever its Content-Type says (`curl -d` sends form encoding)."""
    raw = request.get_data(cache=True)
    try:
        payload = json.loads(raw) if raw.strip() else None
    except RecursionError:
        raise BadRequestError("the request body must be a JSON object: it is nested too deeply") from None
    except ValueError as exc:
        raise BadRequestError(
            f"the request body must be a JSON object: it is not valid JSON ({exc}; "
            f"Content-Type: {request.content_type or 'none'})"
        ) from None
    if not isinstance(payload, dict):
        raise BadRequestError(f"the request body must be a JSON object, got {type(payload).__name__}")
    return payload


def require(payload: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = payload.get(key)
    if value is None or not isinstance(value, kind) or isinstance(value, bool):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise BadRequestError(f"'{key}' is required and must be {names}, got {type(value).__name__}")
    return value


def basic_auth_ok(header: str | None, user: str, password: str) -> bool:
    """Constant-time comparison of an `Authorization: Basic ...` header with the configured pair."""
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    return hmac.compare_digest((header or "").encode(), expected.encode())


def may_change_versions(settings: Settings, header: str | None) -> bool:
    """Pinning changes what every user of a project sees, so it needs a credential: the basic-auth pair when
    one is configured (checked for every route), else `Authorization: Token <LABEL_STUDIO_API_KEY>`."""
    if settings.basic_auth_enabled:
        return True
    if not settings.label_studio_api_key:
        raise ForbiddenError(
            "pinning versions needs credentials: set BASIC_AUTH_USER/BASIC_AUTH_PASS or LABEL_STUDIO_API_KEY"
        )
    expected = f"Token {settings.label_studio_api_key}"
    return hmac.compare_digest((header or "").encode(), expected.encode())


def create_app(settings: Settings | None = None, backend: TemporalBackend | None = None) -> Flask:
    """Build the app; tests pass their own settings (temp dirs) or a backend with test control models."""
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level)
    settings.model_dir.mkdir(parents=True, exist_ok=True)
    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    backend = backend or TemporalBackend(settings)
    backend.jobs.start()
    backend.predictions.resume()
    metrics = RequestMetrics()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.config["BACKEND"] = backend
    app.json.sort_keys = False

    @app.before_request
    def start_and_authenticate() -> None:
        g.started = time.perf_counter()
        if settings.basic_auth_enabled and not basic_auth_ok(
            request.headers.get("Authorization"), settings.basic_auth_user, settings.basic_auth_pass
        ):
            raise UnauthorizedError("basic auth required")

    @app.after_request
    def record(response: Response) -> Response:
        if request.url_rule is not None and "started" in g:
            metrics.record(request.url_rule.rule, response.status_code, time.perf_counter() - g.started)
        if response.status_code == 401:
            response.headers["WWW-Authenticate"] = 'Basic realm="ml-backend"'
        return response

    @app.errorhandler(BackendError)
    def backend_error(exc: BackendError) -> tuple[Response, int]:
        logger.warning(
            "%s %s -> %d %s: %s", request.method, request.path, exc.status, type(exc).__name__, exc
        )
        return jsonify({"error": type(exc).__name__, "message": str(exc)}), exc.status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        status = exc.code or 500
        message = exc.description
        if isinstance(exc, RequestEntityTooLarge):
            message = (
                f"the request body is larger than MAX_REQUEST_BYTES ({settings.max_request_bytes} bytes)"
            )
        logger.warning("%s %s -> %d: %s", request.method, request.path, status, message)
        return jsonify({"error": exc.name, "message": message}), status

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> tuple[Response, int]:
        logger.exception("%s %s failed", request.method, request.path)
        return jsonify({"error": "InternalError", "message": f"{type(exc).__name__}: {exc}"}), 500

    @app.get("/")
    @app.get("/health")
    def health() -> Response:
        return jsonify(backend.health())

    @app.post("/setup")
    def setup() -> Response:
        payload = json_body()
        return jsonify(
            backend.setup(
                project=require(payload, "project", (str, int)),
                label_config=require(payload, "schema", str),
                hostname=payload.get("hostname") or "",
                access_token=payload.get("access_token") or "",
            )
        )

    @app.post("/predict")
    def predict() -> Response:
        payload = json_body()
        tasks = require(payload, "tasks", list)
        if not tasks:
            raise BadRequestError("'tasks' is empty: nothing to predict")
        return jsonify(
            backend.predict(
                tasks=tasks,
                project=require(payload, "project", (str, int)),
                label_config=require(payload, "label_config", str),
            )
        )

    @app.post("/webhook")
    def webhook() -> Response:
        payload = json_body()
        action = require(payload, "action", str)
        return jsonify(backend.handle_event(action, payload))

    @app.get("/versions")
    def versions() -> Response:
        project = request.args.get("project")
        if not project:
            raise BadRequestError("'project' query parameter is required, e.g. /versions?project=1")
        return jsonify(backend.versions(project))

    @app.post("/versions")
    def pin_version() -> Response:
        if not may_change_versions(settings, request.headers.get("Authorization")):
            raise UnauthorizedError("pinning versions needs 'Authorization: Token <LABEL_STUDIO_API_KEY>'")
        payload = json_body()
        if "version" not in payload:
            raise BadRequestError("'version' is required: a version to pin, or null to unpin")
        return jsonify(
            backend.pin_version(
                project=require(payload, "project", (str, int)),
                control=require(payload, "control", str),
                version=payload["version"],
            )
        )

    @app.get("/metrics")
    def metrics_route() -> Response:
        training = backend.jobs.status()
        return jsonify(
            {
                "routes": metrics.snapshot(),
                "trainings": {
                    "run": sum(s["runs"] for s in training.values()),
                    "failed": sum(s["failures"] for s in training.values()),
                },
                "projects": {pid: s.get("last") for pid, s in training.items()},
                "jobs": backend.jobs.overview(),
            }
        )

    return app


_app: Flask | None = None
_app_lock = threading.Lock()


def __getattr__(name: str) -> Any:
    """`_wsgi.app`: the app from the environment's settings, built once, on first access."""
    global _app
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _app_lock:
        if _app is None:
            _app = create_app()
    return _app


def main() -> None:
    """Development server; production runs gunicorn (see README)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9090)
    args = parser.parse_args()
    create_app().run(host=args.host, port=args.port, threaded=True)


if __name__ == "__main__":
    main()
