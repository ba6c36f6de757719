"""The container image, checked without Docker (Docker is not available on these machines).

The Dockerfile's own start command runs from the virtualenv, in a copy of the
files ``.dockerignore`` lets into the image, through ``ops.image_check`` (the
same code ``make image-check`` runs), and must answer ``/readyz`` with 200.
"""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from api.json_api.health import missing_production_settings
from app import create_app
from config import Settings
from config.settings import DEV_WEBHOOK_SECRET
from ops import image_check
from tests.support.firestore_emulator import FirestoreEmulator

SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD", re.IGNORECASE)
START_COMMAND = ["gunicorn", "--config", "gunicorn.conf.py", "app:app"]


def test_the_dockerfiles_start_command_serves_readyz_outside_docker() -> None:
    assert image_check.start_command() == START_COMMAND
    with image_check.start() as running:
        status, body = running.get("/readyz")
        assert status == 200
        assert json.loads(body) == {
            "success": True,
            "status": "ready",
            "store": "sqlite",
            "payments": "sandbox",
        }
        # Served from the image's files: the app is there, the tests are not.
        assert (running.context / "app.py").is_file()
        assert not (running.context / "tests").exists()
    port = running.url.rsplit(":", 1)[1]
    assert f"Listening at: http://127.0.0.1:{port}" in running.stderr()
    # Development keeps gunicorn's readable access line.
    assert '"GET /readyz HTTP/1.1" 200' in running.stdout()
    assert running.returncode == 0
    assert running.stop_seconds is not None
    assert running.stop_seconds < image_check.CLOUD_RUN_SHUTDOWN_S


def test_the_command_in_production_refuses_an_emulator_and_logs_json(
    firestore_emulator: FirestoreEmulator,
) -> None:
    """Production cannot run against an emulator (it would trust forged credentials),
    so the production command is shown refusing one, in JSON lines; the access
    line's JSON shape is checked with LOG_FORMAT=json below."""
    project = f"demo-{uuid.uuid4().hex[:12]}"
    env = {
        "APP_ENV": "production",
        "STORE_URL": f"firestore://{project}",
        "FIRESTORE_EMULATOR_HOST": firestore_emulator.host,
        "FIREBASE_PROJECT_ID": project,
        "STRIPE_SECRET_KEY": "sk_test_container_check",
        "STRIPE_WEBHOOK_SECRET": "whsec_container_check",
        "SECRET_KEY": "container-check-secret-key-of-32-chars",
    }
    with pytest.raises(image_check.ImageCheckError) as refused, image_check.start(env=env):
        pass
    output = str(refused.value)
    assert "FIRESTORE_EMULATOR_HOST is set: production must not trust an emulator" in output
    # APP_ENV=production alone turns on JSON lines, the refusal included.
    lines = [line for line in output.splitlines() if line.startswith("{")]
    assert any("FIRESTORE_EMULATOR_HOST" in json.loads(line)["message"] for line in lines)
    assert "sk_test_container_check" not in output


def test_access_log_lines_are_json_in_cloud_loggings_request_shape() -> None:
    env = {"LOG_FORMAT": "json", "GOOGLE_CLOUD_PROJECT": "demo-project"}
    trace = "0123456789abcdef0123456789abcdef"
    agent = 'probe "quoted" \\ agent'
    path = "/api/tokens/packages?note=%22x%22"
    with image_check.start(env=env) as running:
        status, _ = running.get(
            path, headers={"User-Agent": agent, "X-Cloud-Trace-Context": f"{trace}/42;o=1"}
        )
        assert status == 200
        assert running.get("/no-such-page")[0] == 404
    # Every stdout line is one JSON object, however the client's headers were quoted.
    lines: list[dict[str, Any]] = [json.loads(line) for line in running.stdout().splitlines()]
    entry = next(e for e in lines if e["httpRequest"]["requestUrl"].endswith(path))
    assert entry["severity"] == "INFO"
    assert entry["message"] == f"GET {path} 200"
    request = entry["httpRequest"]
    assert request["requestMethod"] == "GET"
    assert request["requestUrl"] == running.url + path
    assert request["status"] == 200
    assert int(request["responseSize"]) > 100
    assert request["userAgent"] == agent
    assert request["remoteIp"] == "127.0.0.1"
    assert re.fullmatch(r"\d+\.\d{6}s", request["latency"])
    assert request["protocol"] == "HTTP/1.1"
    assert entry["logging.googleapis.com/trace"] == f"projects/demo-project/traces/{trace}"
    assert entry["logging.googleapis.com/spanId"] == f"{42:016x}"
    assert entry["logging.googleapis.com/trace_sampled"] is True
    missing = next(e for e in lines if e["httpRequest"]["status"] == 404)
    assert missing["severity"] == "WARNING"
    assert "logging.googleapis.com/trace" not in missing  # that request sent no trace header


def dockerfile() -> list[tuple[str, str]]:
    return image_check.instructions(image_check.DOCKERFILE)


def test_the_image_runs_as_a_user_that_is_not_root() -> None:
    users = [args for keyword, args in dockerfile() if keyword == "USER"]
    assert users, "the Dockerfile has no USER line, so the app would run as root"
    user = users[-1].split(":", 1)[0]
    assert user not in ("root", "0")


def test_no_secret_is_baked_into_the_image() -> None:
    names = []
    for keyword, args in dockerfile():
        if keyword == "ENV":
            names += list(image_check.image_env(image_check.DOCKERFILE))
        if keyword == "ARG":
            names.append(args.split("=", 1)[0])
    assert names  # the ENV lines were read
    assert [name for name in names if SECRET_NAME.search(name)] == []


def test_dependencies_are_installed_before_the_app_is_copied() -> None:
    steps = [f"{keyword} {args}" for keyword, args in dockerfile()]
    copy_requirements = steps.index("COPY requirements.txt .")
    install = steps.index("RUN pip install --no-cache-dir -r requirements.txt")
    copy_app = steps.index("COPY . .")
    assert copy_requirements < install < copy_app


def test_the_base_image_is_a_pinned_slim_python_311() -> None:
    bases = [args for keyword, args in dockerfile() if keyword == "FROM"]
    assert len(bases) == 1
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", bases[0])
    assert ("EXPOSE", "8080") in dockerfile()


def test_dockerignore_keeps_development_files_out_of_the_image(tmp_path: Path) -> None:
    image_check.stage_context(
        image_check.ROOT, tmp_path, image_check.dockerignore_patterns(image_check.ROOT)
    )
    for needed in ("app.py", "gunicorn.conf.py", "ops/gunicorn_logging.py", "requirements.txt"):
        assert (tmp_path / needed).is_file(), needed
    for kept_out in (".git", ".venv", "tests", "instance", "docs", "ops/image_check.py"):
        assert not (tmp_path / kept_out).exists(), kept_out
    assert list(tmp_path.rglob("__pycache__")) == []


def production_settings(**changes: Any) -> Settings:
    configured = Settings(
        app_env="production",
        store_url="firestore://demo-project",
        secret_key="a-production-secret-key",
        stripe_secret_key="sk_test_configured",
        webhook_secrets=("whsec_configured",),
        firebase_project_id="demo-project",
    )
    return dataclasses.replace(configured, **changes)


def test_readiness_names_the_missing_stripe_settings_only_in_production() -> None:
    assert missing_production_settings(production_settings()) == []
    assert missing_production_settings(production_settings(stripe_secret_key=None)) == [
        "STRIPE_SECRET_KEY"
    ]
    assert missing_production_settings(
        production_settings(webhook_secrets=(DEV_WEBHOOK_SECRET,))
    ) == ["STRIPE_WEBHOOK_SECRET"]
    assert missing_production_settings(
        production_settings(stripe_secret_key=None, webhook_secrets=())
    ) == ["STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"]
    # Development runs on the sandbox: nothing is missing.
    assert missing_production_settings(Settings()) == []


def test_readyz_is_503_and_names_what_is_missing(
    firestore_emulator: FirestoreEmulator,
) -> None:
    project = f"demo-{uuid.uuid4().hex[:12]}"
    app = create_app(
        {
            "APP_ENV": "production",
            "STORE_URL": f"firestore://{project}",
            "FIREBASE_PROJECT_ID": project,
            "STRIPE_SECRET_KEY": "sk_test_readyz",
            "STRIPE_WEBHOOK_SECRET": "whsec_readyz",
            "SECRET_KEY": "readyz-secret-key-of-at-least-32-chars",
            # The client below reaches the emulator through the process environment;
            # production's refusal of an emulator host is tested above.
            "FIRESTORE_EMULATOR_HOST": "",
        }
    )
    client = app.test_client()
    assert client.get("/readyz").status_code == 200
    # Start-up refuses these settings, so the probe's own check is shown by
    # swapping them on the running app.
    services = app.extensions["services"]
    unconfigured = dataclasses.replace(services.settings, stripe_secret_key=None)
    app.extensions["services"] = dataclasses.replace(services, settings=unconfigured)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json() == {
        "success": False,
        "error": "not ready: STRIPE_SECRET_KEY not configured",
        "code": "not_configured",
        "missing": ["STRIPE_SECRET_KEY"],
    }


CLOUD_BUILD_BUILTINS = {"PROJECT_ID", "PROJECT_NUMBER", "BUILD_ID", "LOCATION", "SHORT_SHA"}


def test_cloudbuild_refers_only_to_substitutions_it_declares() -> None:
    text = (image_check.ROOT / "cloudbuild.yaml").read_text(encoding="utf-8")
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    declared = set(re.findall(r"^  (_[A-Z_]+):", body, re.MULTILINE))
    used = set(re.findall(r"\$\{?([A-Z_][A-Z0-9_]*)", body))
    # Cloud Build rejects a build whose "$NAME" is neither built in nor declared,
    # and one that declares a substitution it never uses.
    assert used - declared - CLOUD_BUILD_BUILTINS == set()
    assert declared - used == set()
    assert {"_REGION", "_SERVICE", "_REPOSITORY", "_BASE_URL"} <= declared
    assert (
        "--set-secrets=STRIPE_SECRET_KEY=stripe-secret-key:latest,"
        "STRIPE_WEBHOOK_SECRET=stripe-webhook-secret:latest,SECRET_KEY=flask-secret-key:latest"
    ) in body
    assert "APP_ENV=production" in body
    assert "STORE_URL=firestore://$PROJECT_ID" in body


def test_firebase_json_deploys_the_projects_rules_and_indexes() -> None:
    config = json.loads((image_check.ROOT / "firebase.json").read_text(encoding="utf-8"))
    assert config["firestore"] == {
        "rules": "firestore.rules",
        "indexes": "firestore.indexes.json",
    }
    for name in config["firestore"].values():
        assert (image_check.ROOT / name).is_file(), name
