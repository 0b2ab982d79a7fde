"""``notebooks/demo.ipynb`` runs top to bottom on a CPU (executed with nbclient)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mrovseg.constants import REPO_ROOT

NOTEBOOK = REPO_ROOT / "notebooks" / "demo.ipynb"


@pytest.mark.slow
def test_demo_notebook_runs(tiny_ckpt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("MROVSEG_CKPT", str(tiny_ckpt))  # the kernel inherits the environment
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    ).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert f"checkpoint: {tiny_ckpt}" in text
    assert "labels: (192, 256) int64" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2  # the two overlay figures
