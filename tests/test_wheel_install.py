"""Installing the package as a user would: a wheel, installed without the clone, used from any folder.

The test builds a wheel from a copy of the clone's ``pyproject.toml`` + ``README.md`` + ``src/`` + ``conf/`` (no
network: ``--no-deps --no-build-isolation``), installs it with ``pip install --no-deps --target`` into a
folder of its own, and runs the entry points from a temporary working directory outside the clone with
``PYTHONPATH`` = that folder only, so the clone's ``src/`` cannot be imported. A 2-step training run
must write its run directory under ``./outputs/train/runs/<time>/`` (README, "Install anywhere"); the
checkpoint it writes then serves ``python -m mrovseg.predict`` on one image, whose files must land under
``./outputs/predict/runs/<time>/``. The configs (``mrovseg/conf``) and the toy CLIP (``mrovseg/assets``)
come from the wheel, so a missing package-data pattern fails here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mrovseg.constants import REPO_ROOT
from tests.helpers import TINY, describe


def _run(
    args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The wheel built from the clone, installed into ``site/`` (no dependencies)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO_ROOT / name, source / name)
    for folder in ("src", "conf"):
        shutil.copytree(
            REPO_ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
        )
    wheels, site = root / "wheels", root / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    env = {**os.environ, "PIP_NO_INDEX": "1"}
    proc = _run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(source)], root, env
    )
    assert proc.returncode == 0, describe(proc)
    (wheel,) = wheels.glob("mrovseg-*.whl")
    proc = _run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], root, env)
    assert proc.returncode == 0, describe(proc)
    return {"site": site, "wheel": wheel}


def _user_env(site: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MROVSEG_", "PYTHON"))}
    env.update(PYTHONPATH=str(site), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", WANDB_MODE="disabled")
    return env


def test_wheel_runs_train_and_predict_from_any_folder(installed: dict[str, Path], tmp_path: Path) -> None:
    site = installed["site"]
    for shipped in ("conf/train.yaml", "conf/predict.yaml", "conf/experiment/toy.yaml", "assets/toy_clip"):
        assert (site / "mrovseg" / shipped).exists(), f"{shipped} is missing from the wheel"
    for script in ("mrovseg-train", "mrovseg-eval", "mrovseg-predict"):
        assert (site / "bin" / script).is_file(), f"console script {script} not installed"
    work = tmp_path / "work"  # the user's folder, outside the clone
    work.mkdir()
    env = _user_env(site)

    proc = _run([sys.executable, "-c", "import mrovseg; print(mrovseg.__file__)"], work, env)
    assert proc.returncode == 0, describe(proc)
    assert Path(proc.stdout.strip()).resolve().is_relative_to(site.resolve()), proc.stdout
    assert not Path(proc.stdout.strip()).resolve().is_relative_to(REPO_ROOT.resolve())

    # a 2-step training run of the default experiment (shipped toy CLIP weights from the wheel)
    proc = _run([sys.executable, "-m", "mrovseg.train", *TINY], work, env)
    assert proc.returncode == 0, describe(proc)
    (run,) = (work / "outputs" / "train" / "runs").iterdir()
    ckpt = run / "checkpoints" / "last.ckpt"
    assert ckpt.is_file() and (run / "checkpoints" / "best.ckpt").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    assert list(metrics) == ["toy"] and metrics["toy"]["num_images"] == 2

    # predict on one image with that checkpoint, from the same folder
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(work / "photo.png")
    args = [f"ckpt_path={ckpt}", "inputs=photo.png", "vocabulary=[red circle,blue square,background]"]
    proc = _run([sys.executable, "-m", "mrovseg.predict", *args, "progress=false"], work, env)
    assert proc.returncode == 0, describe(proc)
    (pred_run,) = (work / "outputs" / "predict" / "runs").iterdir()
    labels = np.asarray(Image.open(pred_run / "photo_labels.png"))
    assert labels.shape == (40, 56) and labels.max() < 3
    assert (pred_run / "photo_overlay.png").is_file()
    payload = json.loads((pred_run / "photo.json").read_text())
    assert payload["vocabulary"] == ["red circle", "blue square", "background"]
    assert sum(payload["pixel_counts"]) == 40 * 56
