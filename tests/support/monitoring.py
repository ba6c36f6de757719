"""The log-based metrics and alert policies under ops/monitoring/, read as gcloud reads them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
METRICS_DIR = ROOT / "ops" / "monitoring" / "metrics"
POLICIES_DIR = ROOT / "ops" / "monitoring" / "policies"
METRIC_TYPE_PREFIX = "logging.googleapis.com/user/"


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a YAML mapping")
    return data


def metrics() -> dict[str, dict[str, Any]]:
    """Each LogMetric by name (its file is NAME.yaml)."""
    return {path.stem: _load(path) for path in sorted(METRICS_DIR.glob("*.yaml"))}


def policies() -> dict[str, dict[str, Any]]:
    """Each AlertPolicy by file name."""
    return {path.stem: _load(path) for path in sorted(POLICIES_DIR.glob("*.yaml"))}


def metric_filter(name: str) -> str:
    return str(metrics()[name]["filter"])
