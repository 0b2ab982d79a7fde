"""The Hub folder (``python -m mrovseg.hub``, ``Segmenter.from_pretrained``, ``ckpt_path=<folder> | hf://``).

The model is the 0.1-layout MROVSeg fixture (``tests/fixtures/checkpoints_0_1/mrovseg.ckpt``: a tiny toy
model on the shipped toy CLIP, so every load gives the same labels), placed in a fake run directory with a
``metrics.json`` and a ``.hydra/`` as ``mrovseg.train`` leaves them. Nothing touches the network: the Hub
is a cache folder in the layout ``huggingface_hub`` writes, read with ``HF_HUB_OFFLINE=1``; the upload is
checked against a stand-in for ``HfApi``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig
from PIL import Image

from mrovseg.config import CONF_DIR
from mrovseg.constants import REPO_ROOT
from mrovseg.serving.hub_format import HUB_FILES, HubFolderError, hub_folder, read_hub_folder, read_model
from mrovseg.serving.segmenter import Segmenter
from mrovseg.training.checkpoint import CLIP_PREFIX, CONFIG_KEY, read_checkpoint
from mrovseg.training.checkpoint_upgrade import upgrade_build_config

FIXTURES = Path(__file__).parent / "fixtures" / "checkpoints_0_1"
METRICS = {"toy": {"mIoU": 43.21, "base_mIoU": 50.5, "novel_mIoU": 17.25, "pixel_acc": 91.0, "num_images": 2}}
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def hub_config(overrides: list[str]) -> DictConfig:
    """``conf/hub.yaml`` composed outside a Hydra run."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("hub", overrides=overrides)


def make_run(root: Path) -> Path:
    """A run directory as ``mrovseg.train`` leaves it, with the fixture as ``checkpoints/last.ckpt``."""
    run = root / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(FIXTURES / "mrovseg.ckpt", run / "checkpoints" / "last.ckpt")
    (run / "metrics.json").write_text(json.dumps(METRICS))
    hydra_dir = run / ".hydra"
    hydra_dir.mkdir()
    overrides = ["trainer.max_steps=2", "data.batch_size=2", "seed=7"]
    (hydra_dir / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    hydra = {
        "job": {"name": "train"},
        "overrides": {"task": overrides},
        "runtime": {"choices": {"experiment": "toy"}},
    }
    (hydra_dir / "hydra.yaml").write_text(yaml.safe_dump({"hydra": hydra}))
    data = {
        "_target_": "mrovseg.data.toy_datamodule.ToyDataModule",
        "seed": 0,
        "num_colours": 6,
        "num_shapes": 5,
    }
    data.update(num_novel=6, num_train=4096, train_size=64, batch_size=2)
    trainer = {"max_steps": 2, "precision": "32-true", "accelerator": "cpu", "devices": 1}
    (hydra_dir / "config.yaml").write_text(yaml.safe_dump({"seed": 7, "data": data, "trainer": trainer}))
    return run


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(checkpoint, Hub folder)``: the fixture's run exported by the hub command's function."""
    from mrovseg.hub import export

    root = tmp_path_factory.mktemp("hub")
    ckpt = make_run(root) / "checkpoints" / "last.ckpt"
    folder = export(hub_config([f"ckpt_path={ckpt}", f"save_dir={root / 'folder'}", "repo_id=owner/name"]))
    return ckpt, folder


@pytest.fixture(scope="module")
def expected() -> dict[str, np.ndarray]:
    return dict(np.load(FIXTURES / "expected_labels.npz"))


def copy_of(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / "copy"))


# ------------------------------------------------------------------------------------ round trip
def test_folder_holds_the_trained_parameters_and_the_upgraded_config(exported: tuple[Path, Path]) -> None:
    from safetensors.torch import load_file

    ckpt_path, folder = exported
    assert sorted(p.name for p in folder.iterdir()) == sorted(HUB_FILES)
    ckpt = read_checkpoint(ckpt_path)
    tensors = load_file(folder / "model.safetensors")
    trained = {k: v for k, v in ckpt["state_dict"].items() if not k.startswith(CLIP_PREFIX)}
    assert set(tensors) == set(trained) and not any(k.startswith(CLIP_PREFIX) for k in tensors)
    for key, value in trained.items():
        torch.testing.assert_close(tensors[key], value, rtol=0, atol=0)
    config = json.loads((folder / "config.json").read_text())
    assert config[CONFIG_KEY] == upgrade_build_config(ckpt[CONFIG_KEY])  # 0.1 targets moved to today's
    assert config[CONFIG_KEY]["module"]["_target_"] == "mrovseg.training.mrovseg.MROVSegModule"
    assert (
        config["files"]["model.safetensors"]["sha256"]
        == hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    )


def test_export_is_byte_reproducible(exported: tuple[Path, Path], tmp_path: Path) -> None:
    """The same checkpoint gives the same files (no new blob on the Hub), also over an earlier export."""
    from mrovseg.hub import export

    for _ in range(2):
        again = export(hub_config([f"ckpt_path={exported[0]}", f"save_dir={tmp_path}", "repo_id=owner/name"]))
        for name in HUB_FILES:
            assert (again / name).read_bytes() == (exported[1] / name).read_bytes(), name


def test_from_pretrained_gives_the_labels_of_the_checkpoint(
    exported: tuple[Path, Path], expected: dict[str, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    ckpt_path, folder = exported
    from_ckpt = Segmenter.from_checkpoint(ckpt_path, precision="fp32")(expected["image"], vocabulary="toy")

    real_load = torch.load

    def no_unpickling(f, *args, **kwargs):  # CLIP's own weights (open_clip) may be a .pt file
        assert folder.resolve() not in Path(str(f)).resolve().parents, f"torch.load of {f}"
        return real_load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", no_unpickling)
    from_folder = Segmenter.from_pretrained(folder, precision="fp32")(expected["image"], vocabulary="toy")
    np.testing.assert_array_equal(from_folder.labels, from_ckpt.labels)
    np.testing.assert_array_equal(from_folder.labels, expected["mrovseg"])


def test_model_card_holds_the_run(exported: tuple[Path, Path]) -> None:
    _, folder = exported
    card = (folder / "README.md").read_text()
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["library_name"] == "mrovseg" and front["license"] == "apache-2.0"
    assert {"mrovseg", "open-vocabulary-segmentation"} <= set(front["tags"])
    for value in ("43.21", "50.50", "17.25", "91.00", "| toy |"):  # the run's metrics.json
        assert value in card, value
    assert "python -m mrovseg.train trainer.max_steps=2 data.batch_size=2 seed=7" in card
    assert "arXiv 2408.14776" in card and "`toy-vit-p4-32` (width 64, depth 3)" in card
    assert "toy world of coloured shapes" in card and "2 optimizer steps" in card
    assert 'Segmenter.from_pretrained("owner/name")' in card and "ckpt_path=hf://owner/name" in card


# ------------------------------------------------------------------------------------ the Hub's cache
def populate_cache(cache: Path, folder: Path, repo_id: str = "owner/name") -> Path:
    """The layout ``huggingface_hub`` writes: ``models--owner--name/{blobs,snapshots/<commit>,refs/main}``,
    snapshot files linking to blobs named by their hash; returns the snapshot folder."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    for path in folder.iterdir():
        data = path.read_bytes()
        if path.suffix == ".safetensors":  # LFS files: blobs named by sha256; others: git blob sha1
            blob = hashlib.sha256(data).hexdigest()
        else:
            blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        (repo / "blobs" / blob).write_bytes(data)
        (snapshot / path.name).symlink_to(Path("..", "..", "blobs", blob))
    return snapshot


@pytest.fixture
def offline_cache(tmp_path: Path, exported: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Hugging Face cache holding owner/name at :data:`COMMIT`, with ``HF_HUB_OFFLINE=1``
    (``huggingface_hub`` reads both variables when imported: its constants are set too)."""
    from huggingface_hub import constants

    cache = tmp_path / "hf"
    snapshot = populate_cache(cache, exported[1])
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return snapshot


def test_offline_cache_loads_by_repo_id(offline_cache: Path, expected: dict[str, np.ndarray]) -> None:
    result = Segmenter.from_pretrained("owner/name", precision="fp32")(expected["image"], vocabulary="toy")
    np.testing.assert_array_equal(result.labels, expected["mrovseg"])
    assert hub_folder("owner/name", revision=COMMIT).resolve() == offline_cache.resolve()
    assert hub_folder(f"hf://owner/name@{COMMIT}").resolve() == offline_cache.resolve()
    with pytest.raises(FileNotFoundError, match=r"owner/other.*HF_HUB_OFFLINE=1"):
        hub_folder("hf://owner/other")


def test_predict_reads_hf_and_folder_paths_like_the_checkpoint(
    offline_cache: Path, exported: tuple[Path, Path], expected: dict[str, np.ndarray], tmp_path: Path
) -> None:
    """``ckpt_path=`` of predict: the checkpoint, the folder and ``hf://owner/name`` write the same labels."""
    from mrovseg.predict import predict

    image = tmp_path / "scene.png"
    Image.fromarray(expected["image"]).save(image)
    labels = []
    for source in (exported[0], exported[1], "hf://owner/name"):
        out = tmp_path / f"out{len(labels)}"
        GlobalHydra.instance().clear()
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            cfg = compose(
                "predict",
                [
                    f"ckpt_path={source}",
                    f"inputs={image}",
                    "vocabulary=toy",
                    f"output_dir={out}",
                    "device=cpu",
                    "progress=false",
                    "precision=fp32",
                    "paths.output_dir=" + str(out),
                ],
            )
        assert not predict(cfg).failed
        labels.append(np.array(Image.open(out / "scene_labels.png")))
    np.testing.assert_array_equal(labels[1], labels[0])
    np.testing.assert_array_equal(labels[2], labels[0])
    np.testing.assert_array_equal(labels[0], expected["mrovseg"])


def test_environment_variables_reach_huggingface_hub(tmp_path: Path, exported: tuple[Path, Path]) -> None:
    """In a fresh process, ``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE=1`` alone find the cached repository."""
    cache = tmp_path / "hf"
    populate_cache(cache, exported[1])
    code = "from mrovseg.serving.hub_format import read_model; print(len(read_model('hf://owner/name')['state_dict']))"
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert int(proc.stdout.split()[-1]) == len(read_hub_folder(exported[1])["state_dict"])


def test_eval_scores_the_folder_like_the_checkpoint(exported: tuple[Path, Path], tmp_path: Path) -> None:
    """``ckpt_path=<folder>`` of eval: the same metrics as the checkpoint (2 toy scenes of 64²)."""
    from mrovseg.constants import ASSETS_DIR
    from mrovseg.eval import evaluate
    from tests.helpers import TINY_DATA, TINY_TRAINER, composed

    clip = f"clip.pretrained={ASSETS_DIR / 'toy_clip' / 'toy-vit-p4-32.pt'}"
    results = []
    for i, source in enumerate(exported):
        with composed(
            "eval", tmp_path / str(i), [f"ckpt_path={source}", clip], base=TINY_DATA + TINY_TRAINER
        ) as cfg:
            results.append(evaluate(cfg)["toy"])
    assert json.dumps(results[1], sort_keys=True) == json.dumps(
        results[0], sort_keys=True
    )  # NaN: absent classes


# ------------------------------------------------------------------------------------ integrity
@pytest.mark.parametrize("name", ["model.safetensors", "config.json"])
def test_a_missing_file_is_named(name: str, exported: tuple[Path, Path], tmp_path: Path) -> None:
    folder = copy_of(exported[1], tmp_path)
    (folder / name).unlink()
    with pytest.raises(FileNotFoundError, match=rf"{name} is missing"):
        Segmenter.from_pretrained(folder)


def test_an_altered_weights_file_is_named(exported: tuple[Path, Path], tmp_path: Path) -> None:
    folder = copy_of(exported[1], tmp_path)
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-5] ^= 0x01  # one bit of one weight
    (folder / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(HubFolderError, match=r"model\.safetensors .* was altered"):
        read_model(folder)


def test_an_altered_config_is_named(exported: tuple[Path, Path], tmp_path: Path) -> None:
    folder = copy_of(exported[1], tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config[CONFIG_KEY]["model"]["num_cls_blocks"] = 3
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    with pytest.raises(HubFolderError, match=r"config\.json .* was altered"):
        read_model(folder)
    (folder / "config.json").write_text("{ not json")
    with pytest.raises(HubFolderError, match=r"config\.json .* is damaged"):
        read_model(folder)


def test_the_model_card_is_not_needed_to_load(exported: tuple[Path, Path], tmp_path: Path) -> None:
    folder = copy_of(exported[1], tmp_path)
    (folder / "README.md").write_text("# edited on the Hub\n")
    assert read_model(folder)["state_dict"].keys() == read_hub_folder(exported[1])["state_dict"].keys()


# ------------------------------------------------------------------------------------ the command
def test_push_uploads_the_folder_through_huggingface_hub(
    exported: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub

    from mrovseg.hub import export

    calls: list[tuple[str, dict]] = []

    class FakeApi:
        def create_repo(self, repo_id: str, **kwargs) -> None:
            calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))

        def upload_folder(self, **kwargs) -> str:
            calls.append(("upload_folder", kwargs))
            return "https://huggingface.co/owner/name/commit/abc"

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    save = tmp_path / "folder"
    export(hub_config([f"ckpt_path={exported[0]}", f"save_dir={save}", "push=true", "repo_id=owner/name"]))
    assert [c[0] for c in calls] == ["create_repo", "upload_folder"]
    upload = calls[1][1]
    assert upload["repo_id"] == "owner/name" and Path(upload["folder_path"]) == save
    with pytest.raises(ValueError, match="repo_id"):
        export(hub_config([f"ckpt_path={exported[0]}", f"save_dir={save}", "push=true"]))


def test_the_command_refuses_a_folder_with_other_files(exported: tuple[Path, Path], tmp_path: Path) -> None:
    from mrovseg.hub import export

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"notes\.txt"):
        export(hub_config([f"ckpt_path={exported[0]}", f"save_dir={tmp_path / 'out'}"]))


def test_console_script_is_declared() -> None:
    tomllib = pytest.importorskip("tomllib")
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["mrovseg-hub"] == "mrovseg.hub:main"
