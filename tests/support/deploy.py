"""What the container and cluster files must agree with: the environment variables the app's
settings read, the command lines its console script accepts, and the linters that check them."""

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import build_parser
from app.core.config import Settings

ROOT = Path(__file__).resolve().parents[2]
# Read by libraries in the app's processes rather than by Settings.
LIBRARY_ENV = {"PROMETHEUS_MULTIPROC_DIR", "HF_HOME", "HF_HUB_OFFLINE"}


def settings_env_names() -> set[str]:
    """Every environment variable the app reads."""
    return {name.upper() for name in Settings.model_fields} | LIBRARY_ENV


def parse_command(argv: list[str]) -> argparse.Namespace:
    """Parse `mlops ...` exactly as the console script would; fails the test if it would not."""
    assert argv[0] == "mlops", argv
    try:
        return build_parser().parse_args(argv[1:])
    except SystemExit:
        pytest.fail(f"`{' '.join(argv)}` is not a command `mlops` accepts")


def run_tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a linter installed beside the interpreter (the dev extra), from the repository root."""
    tool = Path(sys.executable).parent / name
    return subprocess.run(
        [str(tool), *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
