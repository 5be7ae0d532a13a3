"""The notebooks under notebooks/ run end to end with a real Jupyter kernel, and stay clean.

Each notebook is executed in memory (nothing is written back) by nbclient with the
working directory set to notebooks/, so a notebook refers to scenario files as
``../scenarios/...``. A cell that raises fails the test with the cell's traceback.

The kernel is this interpreter: the ``kernel_python`` fixture writes a ``python3``
kernelspec whose argv is ``sys.executable -m ipykernel_launcher`` into a temporary
directory and puts it first on ``JUPYTER_PATH``, so a ``python3`` kernelspec
installed elsewhere (e.g. in ``~/.local/share/jupyter``) cannot run the notebooks in
another Python that lacks ``sim``. Nothing is installed into the environment.

Committed notebooks carry no outputs and no execution counts; the second test
keeps it so. To clear a notebook after working in it:
``jupyter nbconvert --clear-output --inplace notebooks/NAME.ipynb``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
EXPECTED = {
    "01_protocol_schedules.ipynb",
    "02_cohort_and_steroid_burden.ipynb",
    "03_recruitment_forecast.ipynb",
    "04_comparing_scenarios.ipynb",
    "05_power_and_sample_size.ipynb",
}
KERNEL_NAME = "python3"
CELL_TIMEOUT_S = 300


def test_the_planner_notebooks_are_all_there() -> None:
    assert {p.name for p in NOTEBOOKS} >= EXPECTED


@pytest.fixture(scope="session")
def kernel_python(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Point the ``python3`` kernelspec at ``sys.executable``; yield the kernel name."""
    pytest.importorskip("nbclient", reason="nbclient is not installed (pip install -e '.[test]')")
    from ipykernel.kernelspec import write_kernel_spec
    from jupyter_client.kernelspec import KernelSpecManager

    jupyter_dir = tmp_path_factory.mktemp("jupyter")
    write_kernel_spec(path=str(jupyter_dir / "kernels" / KERNEL_NAME))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(jupyter_dir))
        spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
        assert spec.argv[0] == sys.executable, spec.argv
        yield KERNEL_NAME


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_end_to_end(path: Path, kernel_python: str) -> None:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name=kernel_python,
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(NOTEBOOKS_DIR)}},
    )
    client.execute()  # raises CellExecutionError, with the traceback, on any cell error
    errors = [
        output
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_committed_notebook_is_clean(path: Path) -> None:
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert nb.get("nbformat") == 4
    dirty = [
        i
        for i, cell in enumerate(nb["cells"])
        if cell["cell_type"] == "code"
        and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert not dirty, f"{path.name}: cells {dirty} have outputs or execution counts; clear them"
