"""Tests of the ablation sweeps (``conf/sweep/``): what they compose to and a real multirun."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from mrovseg.config import CONF_DIR, job_dirname
from mrovseg.training.checkpoint import build_config_of, build_module
from tests.helpers import TINY, compose_with_hydra, composed, describe, run_entry_point

SWEEPS = sorted(p.stem for p in (CONF_DIR / "sweep").glob("*.yaml"))

#: Table 2 of the paper, one row per job of ``sweep=components``.
TABLE2 = {
    "baseline": {
        "slice_ratio": 0.0,
        "multires": "none",
        "spatial": "concat",
        "hierarchical": False,
        "decoupled": False,
        "multi_grained": False,
    },
    "multires_adapter": {
        "slice_ratio": 0.5,
        "multires": "scale_attention",
        "spatial": "dconv",
        "hierarchical": False,
        "decoupled": False,
        "multi_grained": False,
    },
    "hierarchical_decoder": {
        "slice_ratio": 0.5,
        "multires": "scale_attention",
        "spatial": "dconv",
        "hierarchical": True,
        "decoupled": False,
        "multi_grained": False,
    },
    "full": {
        "slice_ratio": 0.5,
        "multires": "scale_attention",
        "spatial": "dconv",
        "hierarchical": True,
        "decoupled": True,
        "multi_grained": True,
    },
}


def _sweep_params(name: str) -> dict[str, list[str]]:
    """``{key: [value, ...]}`` of a sweep config, split as Hydra's basic sweeper splits them."""
    cfg = compose_with_hydra("train", [f"sweep={name}"])
    assert cfg.hydra.mode.name == "MULTIRUN"
    parser = OverridesParser.create()
    params = {}
    for key, values in cfg.hydra.sweeper.params.items():
        override = parser.parse_override(f"{key}={values}")
        assert override.is_sweep_override(), key
        params[key] = list(override.sweep_string_iterator())
    return params


def test_components_sweep_is_the_four_rows_of_table2(tmp_path: Path) -> None:
    assert _sweep_params("components") == {"+sweep/components": list(TABLE2)}
    for row, expected in TABLE2.items():
        with composed("train", tmp_path, [f"+sweep/components={row}"]) as cfg:
            model = cfg.model
            got = {
                "slice_ratio": model.slice_ratio,
                "multires": model.adapter.multires_fusion,
                "spatial": model.adapter.spatial_fusion,
                "hierarchical": model.decoder.hierarchical,
                "decoupled": model.classifier.decoupled,
                "multi_grained": model.classifier.multi_grained,
            }
            assert got == expected, row
            module = build_module(build_config_of(cfg))  # every row builds
        assert module.model.classifier.decoupled is expected["decoupled"]
        assert module.model.classifier.slice_keys is expected["multi_grained"]


@pytest.mark.parametrize("sweep", SWEEPS)
def test_every_sweep_value_composes_into_the_job_config(sweep: str) -> None:
    params = _sweep_params(sweep)
    assert params
    for key, values in params.items():
        assert len(values) >= 2, key
        for value in values:
            job = compose_with_hydra("train", [f"{key}={value}"])
            if key.startswith("+"):  # a config group (+sweep/components, +sweep/width): it sets model entries
                group = CONF_DIR / key[1:] / f"{value}.yaml"
                expected = OmegaConf.load(group).model
                assert OmegaConf.merge(job.model, expected) == job.model, value  # all its entries are set
            else:
                node = OmegaConf.select(job, key)
                assert node == yaml.safe_load(value), (key, value)


@pytest.mark.slow
def test_slice_ratio_multirun_runs_every_job_in_its_own_directory(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "multirun"
    args = ["-m", "sweep=slice_ratio", "clip.pretrained=null", *TINY, "trainer.max_steps=1"]
    args += ["trainer.val_check_interval=1", f"hydra.sweep.dir={sweep_dir}"]
    proc = run_entry_point("mrovseg.train", args, timeout=600)
    assert proc.returncode == 0, describe(proc)
    jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir())
    assert len(jobs) == 6, [p.name for p in jobs]
    assert sorted(p.name.split("_", 1)[0] for p in jobs) == [str(i) for i in range(6)]
    assert all(len(p.name) <= 130 for p in jobs)  # the long command line is cut, not an OSError
    ratios = []
    for job in jobs:
        assert (job / "checkpoints" / "last.ckpt").is_file(), job
        assert json.loads((job / "metrics.json").read_text())["toy"]["num_images"] == 2, job
        ratios.append(OmegaConf.load(job / ".hydra" / "config.yaml").model.slice_ratio)
    assert sorted(ratios) == [0.0, 0.25, 0.5, 0.625, 0.75, 1.0]


def test_job_dirname_is_a_short_file_name() -> None:
    assert job_dirname("model.slice_ratio=0.5") == "model.slice_ratio=0.5"
    assert (
        job_dirname("clip.pretrained=/w/clip.pt,model.slice_ratio=0")
        == "clip.pretrained=-w-clip.pt,model.slice_ratio=0"
    )
    long = ",".join(f"model.adapter.key{i}={i}" for i in range(40))
    assert len(job_dirname(long)) == 120 and job_dirname(long).endswith("...")
