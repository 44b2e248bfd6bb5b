"""The `mlops` console script: how many processes `serve` starts, and the metrics directory that
lets a scrape of any of them report the sum over all."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import metrics_directory, serving_processes
from app.core.config import Settings

POSTGRES = "postgresql://postgres@127.0.0.1:5432/mlops"


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_serve_starts_one_process_per_core_on_postgresql_and_one_on_sqlite() -> None:
    assert serving_processes(settings(database_url=POSTGRES), None) == len(os.sched_getaffinity(0))
    assert serving_processes(settings(), None) == 1  # the SQLite default serializes writers
    assert serving_processes(settings(database_url=POSTGRES, web_concurrency=3), None) == 3
    assert serving_processes(settings(web_concurrency=3), 5) == 5  # --workers wins


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """`metrics_directory` exports the variable; monkeypatch puts the environment back (set
    first: a variable deleted while absent would not be recorded, and would leak out)."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")


@pytest.mark.usefixtures("environ")
def test_one_process_needs_no_metrics_directory() -> None:
    with metrics_directory(None, 1) as directory:
        assert directory is None
        assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ


@pytest.mark.usefixtures("environ")
def test_several_processes_get_a_fresh_directory_removed_at_exit() -> None:
    with metrics_directory(None, 4) as directory:
        assert directory is not None and Path(directory).is_dir()
        assert list(Path(directory).iterdir()) == []
        assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == directory
    assert not Path(directory).exists()


@pytest.mark.usefixtures("environ")
def test_a_configured_directory_is_emptied_at_start_and_kept(tmp_path: Path) -> None:
    stale = tmp_path / "counter_12345.db"
    stale.write_bytes(b"an earlier run's counts")
    unrelated = tmp_path / "README"
    unrelated.write_text("not ours")
    with metrics_directory(str(tmp_path), 1) as directory:
        assert directory == str(tmp_path)
        assert not stale.exists(), "an earlier run's counts would be summed into this one's"
        assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path)
    assert tmp_path.is_dir() and unrelated.exists()


def test_the_cli_imports_prometheus_client_only_after_choosing_the_directory() -> None:
    # prometheus-client fixes its storage (memory or files) when it is first imported.
    check = "import sys, app.cli; assert 'prometheus_client' not in sys.modules, 'imported early'"
    result = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
