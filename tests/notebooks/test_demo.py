"""notebooks/demo.ipynb: committed without outputs, and it runs top to bottom against a live
service on PostgreSQL (the three models served by a tiny DistilBERT and a fake Ollama)."""

from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbformat import NotebookNode

from tests.support.deploy import run_tool
from tests.support.fakes import FakeOllama, RunningServer, build_tiny_distilbert
from tests.support.processes import free_port, service_env, start_api, stop

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "demo.ipynb"


@pytest.fixture(scope="module")
def distilbert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_distilbert(tmp_path_factory.mktemp("notebook-distilbert"))


@pytest.fixture
def fake_ollama() -> Iterator[FakeOllama]:
    ollama = FakeOllama(reply="Teams share clusters; a scheduler places deployments by priority.")
    with RunningServer(ollama.app(), ollama.port):
        yield ollama


@pytest.fixture
def service(
    postgres_url: str, distilbert_dir: Path, fake_ollama: FakeOllama, tmp_path: Path
) -> Iterator[tuple[str, Path]]:
    """(base URL, log file) of a live API with the default rate limits on; the notebook uses
    fresh random names, so whatever other tests left in the database does not matter."""
    env = service_env(
        postgres_url,
        MOCK_DELAY_MIN="0.05",
        MOCK_DELAY_MAX="0.4",
        DISTILBERT_MODEL=str(distilbert_dir),
        OLLAMA_HOST=fake_ollama.host,
        OLLAMA_MODEL="gemma3:1b",
        RATE_LIMIT_ENABLED="true",
    )
    port = free_port()
    log = tmp_path / "api.log"
    server = start_api(env, port, log)
    try:
        yield f"http://127.0.0.1:{port}", log
    finally:
        stop(server)


def stream_text(nb: NotebookNode) -> str:
    return "".join(
        output.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "stream"
    )


def image_cells(nb: NotebookNode) -> int:
    return sum(
        any("image/png" in output.get("data", {}) for output in cell.outputs)
        for cell in nb.cells
        if cell.cell_type == "code"
    )


def test_the_committed_notebook_has_no_outputs() -> None:
    result = run_tool("nbstripout", "--verify", str(NOTEBOOK))
    assert result.returncode == 0, f"run nbstripout on {NOTEBOOK}: {result.stdout}{result.stderr}"
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert nb.nbformat == 4
    assert nb.metadata.kernelspec.name == "python3"
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code, "the notebook has no code"
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)


def test_the_notebook_runs_against_a_live_service(
    service: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base_url, log = service
    monkeypatch.setenv("MLOPS_URL", base_url)  # the kernel inherits this process's environment
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    try:
        client.execute()
    except CellExecutionError as error:
        tail = log.read_text(errors="replace")[-4000:]
        pytest.fail(f"{error}\n--- server log tail ---\n{tail}")

    text = stream_text(nb)
    assert "burst: 200 sent, {200: 200}" in text
    assert image_cells(nb) >= 2, "the histogram and the timeline should be drawn"
    assert "preempted_by" in text and "requeued" in text
    for model in ("mock", "distilbert-sst2", "gemma3:1b"):
        assert f"{model}: {{" in text, f"the {model} prediction did not answer 200"
