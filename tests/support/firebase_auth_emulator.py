"""Start the Firebase Auth emulator (firebase-tools from npm) for a test session.

``make test`` installs firebase-tools, pinned, into tools/firebase-tools with
``npm ci``. When the emulator cannot start, ``start`` raises with the reason,
so the tests that need it fail instead of being skipped.

The emulator issues unsigned ID tokens and keeps its users in memory. It
serves one project (``project_id``) for the client endpoints (sign-up,
sign-in); the app under test must use that project id.

    emulator = FirebaseAuthEmulator().start()
    uid, id_token = emulator.sign_up("a@example.com", "secret-pass")
    emulator.verify_email("a@example.com")   # next sign-in: email_verified true
    id_token = emulator.sign_in("a@example.com", "secret-pass")
    emulator.set_claims(uid, {"admin": True})
    emulator.disable(uid); emulator.revoke(uid); emulator.clear()
    os.environ["FIREBASE_AUTH_EMULATOR_HOST"] = emulator.host  # for firebase-admin
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from tests.support.firestore_emulator import free_port
from tests.support.waiting import Started, http_ok, wait_answering

ROOT = Path(__file__).resolve().parents[2]
FIREBASE_BIN = Path(
    os.environ.get("FIREBASE_TOOLS_BIN", ROOT / "tools/firebase-tools/node_modules/.bin/firebase")
)
START_TIMEOUT_S = 90.0
DEFAULT_PROJECT = "demo-token-store"  # "demo-" projects never reach real Google services
API_KEY = "fake-api-key"  # the emulator accepts any key
ADMIN = {"Authorization": "Bearer owner"}  # the emulator's admin credential


class FirebaseAuthEmulatorError(RuntimeError):
    """The emulator could not start, or refused a request."""


class FirebaseAuthEmulator:
    def __init__(self, project_id: str = DEFAULT_PROJECT) -> None:
        self.project_id = project_id
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"  # FIREBASE_AUTH_EMULATOR_HOST's value
        self.url = f"http://{self.host}"
        self.process: subprocess.Popen[bytes] | None = None
        # Its own directory: the CLI writes firebase-debug.log where it runs.
        self.workdir = tempfile.TemporaryDirectory(prefix="firebase-auth-emulator-")

    # -- process ----------------------------------------------------------------

    def start(self) -> FirebaseAuthEmulator:
        if not FIREBASE_BIN.exists():
            raise FirebaseAuthEmulatorError(
                f"firebase-tools is not installed at {FIREBASE_BIN}; run "
                "`npm ci --prefix tools/firebase-tools` (make test does this)"
            )
        config = Path(self.workdir.name) / "firebase.json"
        config.write_text(json.dumps(self._config()))
        command = [
            str(FIREBASE_BIN),
            "emulators:start",
            "--only=auth",
            f"--project={self.project_id}",
            f"--config={config}",
        ]
        log = (Path(self.workdir.name) / "emulator.log").open("wb")
        env = {**os.environ, "FIREBASE_CLI_DISABLE_UPDATE_CHECK": "true"}
        self.process = subprocess.Popen(
            command,
            cwd=self.workdir.name,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
        log.close()
        self._wait_ready()
        return self

    def _config(self) -> dict[str, Any]:
        # Every port the CLI opens is chosen free, so several runs never collide.
        local = "127.0.0.1"
        return {
            "emulators": {
                "auth": {"host": local, "port": self.port},
                "hub": {"host": local, "port": free_port()},
                "logging": {"host": local, "port": free_port()},
                "ui": {"enabled": False},
            }
        }

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        started = wait_answering(self.process, http_ok(self.url), deadline, 0.2)
        if started is Started.ANSWERED:
            return
        if started is Started.EXITED:
            raise FirebaseAuthEmulatorError(f"the emulator exited early:\n{self.output()}")
        self.stop()
        raise FirebaseAuthEmulatorError(
            f"the Auth emulator was not ready after {START_TIMEOUT_S}s:\n{self.output()}"
        )

    def output(self) -> str:
        path = Path(self.workdir.name) / "emulator.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None:
            try:
                os.killpg(self.process.pid, 15)
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait(timeout=20)
            except ProcessLookupError:
                pass
            self.process = None
        self.workdir.cleanup()

    # -- REST API -----------------------------------------------------------------

    def _post(self, path: str, body: dict[str, Any], admin: bool = False) -> dict[str, Any]:
        url = f"{self.url}/identitytoolkit.googleapis.com/v1/{path}"
        response = requests.post(
            url, params={"key": API_KEY}, json=body, headers=ADMIN if admin else {}, timeout=10
        )
        if not response.ok:
            raise FirebaseAuthEmulatorError(f"POST {path}: {response.status_code} {response.text}")
        data: dict[str, Any] = response.json()
        return data

    def _admin(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._post(f"projects/{self.project_id}/accounts{action}", body, admin=True)

    def sign_up(self, email: str, password: str) -> tuple[str, str]:
        """A new email/password user, as the sign-in page's sign-up makes: (uid, ID token).

        Its token says ``email_verified: false`` until ``verify_email``."""
        data = self._post(
            "accounts:signUp", {"email": email, "password": password, "returnSecureToken": True}
        )
        return str(data["localId"]), str(data["idToken"])

    def sign_in(self, email: str, password: str) -> str:
        """A fresh ID token, carrying the user's current claims and verification."""
        body = {"email": email, "password": password, "returnSecureToken": True}
        return str(self._post("accounts:signInWithPassword", body)["idToken"])

    def verify_email(self, email: str) -> None:
        """Send a verification email and follow its link, through the emulator's oobCodes."""
        body = {"requestType": "VERIFY_EMAIL", "email": email, "returnOobLink": True}
        self._admin(":sendOobCode", body)
        codes = requests.get(
            f"{self.url}/emulator/v1/projects/{self.project_id}/oobCodes", timeout=10
        ).json()["oobCodes"]
        mine = [c for c in codes if c["email"] == email and c["requestType"] == "VERIFY_EMAIL"]
        if not mine:
            raise FirebaseAuthEmulatorError(f"no verification code was sent to {email}")
        self._post("accounts:update", {"oobCode": mine[-1]["oobCode"]})

    def create_user(self, uid: str, email: str | None = None, verified: bool = False) -> None:
        """A user with a chosen uid (Admin SDK create_user); an existing uid is left as is.

        Its tokens can then be hand-built (tests.support.firebase_tokens): firebase-admin's
        revocation check only needs the user to exist, enabled and not revoked."""
        body: dict[str, Any] = {"localId": uid, "emailVerified": verified}
        if email:
            body["email"] = email
        try:
            self._admin("", body)
        except FirebaseAuthEmulatorError as exc:
            if "DUPLICATE" not in str(exc):
                raise

    def set_claims(self, uid: str, claims: dict[str, Any]) -> None:
        """Custom claims, as the Admin SDK's set_custom_user_claims sets them."""
        self._admin(":update", {"localId": uid, "customAttributes": json.dumps(claims)})

    def disable(self, uid: str) -> None:
        self._admin(":update", {"localId": uid, "disableUser": True})

    def revoke(self, uid: str) -> None:
        """Revoke every token issued so far, as the Admin SDK's revoke_refresh_tokens does.

        validSince is in whole seconds and a token issued in the same second
        would still count as valid; the next second revokes it for certain."""
        self._admin(":update", {"localId": uid, "validSince": str(int(time.time()) + 1)})

    def user(self, uid: str) -> dict[str, Any]:
        users = self._admin(":lookup", {"localId": [uid]}).get("users", [])
        if not users:
            raise FirebaseAuthEmulatorError(f"no user {uid}")
        return dict(users[0])

    def clear(self) -> None:
        """Delete every user of the project."""
        url = f"{self.url}/emulator/v1/projects/{self.project_id}/accounts"
        requests.delete(url, timeout=10).raise_for_status()
