"""The Firebase JS SDK the sign-in page runs: one pinned release, served by the app itself.

static/vendor/firebase.js is committed so that `make run` and the image need no
Node; these tests hold it to the pin in tools/firebase-sdk and rebuild it from
the locked packages (which `make test` installs) to show it is exactly that build.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SDK_DIR = ROOT / "tools" / "firebase-sdk"
BUNDLE = ROOT / "static" / "vendor" / "firebase.js"
INSTALLED = SDK_DIR / "node_modules" / ".package-lock.json"
EXACT = re.compile(r"\d+\.\d+\.\d+")


def read_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def pins() -> dict[str, str]:
    pinned: dict[str, str] = read_json(SDK_DIR / "package.json")["devDependencies"]
    return pinned


def test_the_sdk_and_its_bundler_are_pinned_to_exact_releases() -> None:
    locked = read_json(SDK_DIR / "package-lock.json")["packages"]
    for name, version in pins().items():
        assert EXACT.fullmatch(version), f"{name} {version!r} is a range, not one release"
        assert locked[f"node_modules/{name}"]["version"] == version, name
    assert pins()["firebase"].startswith("12."), "firebase 12.x (13 needs Node 24)"


def test_the_committed_bundle_names_the_pinned_release() -> None:
    banner = BUNDLE.read_text(encoding="utf-8").splitlines()[0]
    assert f"Firebase JS SDK {pins()['firebase']} " in banner
    assert f"with esbuild {pins()['esbuild']} " in banner


def test_the_bundle_imports_nothing_and_knows_no_cdn() -> None:
    code = BUNDLE.read_text(encoding="utf-8")
    assert re.search(r"\bimport\s*[{(\"*]", code) is None  # one self-contained module
    assert "gstatic.com" not in code
    assert re.search(r"export\s*\{[^}]*\binitializeAuth\b", code)


def test_the_committed_bundle_is_the_build_of_the_pinned_packages(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: the SDK build check needs Node 20", pytrace=False)
    if not INSTALLED.is_file():
        pytest.fail(
            f"{SDK_DIR}/node_modules is missing: run `make firebase-sdk` (make test installs it)",
            pytrace=False,
        )
    installed = read_json(SDK_DIR / "node_modules" / "firebase" / "package.json")["version"]
    assert installed == pins()["firebase"], "node_modules is stale: run make firebase-sdk"
    rebuilt = tmp_path / "firebase.js"
    subprocess.run(
        [node, str(SDK_DIR / "build.mjs"), str(rebuilt)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert rebuilt.read_bytes() == BUNDLE.read_bytes(), (
        "static/vendor/firebase.js differs from the build of the pinned packages: "
        "run `make firebase-sdk` and commit the result"
    )
