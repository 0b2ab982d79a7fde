"""Sweeps beyond one process: Hydra's submitit launcher (``hydra/launcher=local|slurm``) and Optuna
search (``hparams_search=...``), W&B grouping of a sweep, and ``scripts/seeds.py`` on a submitit sweep.

SLURM is tested without a cluster: the composed launcher config, Lightning's SLURM plugin built from it
under SLURM's variables, and the sbatch script submitit writes (a stand-in ``sbatch`` on ``PATH`` keeps a
copy and refuses the submission). The local launcher runs the same submitit code path for real on the CPU.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import OmegaConf, open_dict

from mrovseg.constants import REPO_ROOT
from mrovseg.training.trainer import make_trainer
from tests.helpers import TINY, compose_with_hydra, composed, describe, run_entry_point, subprocess_env

spec = importlib.util.spec_from_file_location("seeds", REPO_ROOT / "scripts" / "seeds.py")
seeds = importlib.util.module_from_spec(spec)
spec.loader.exec_module(seeds)

#: A 2-node ViT-B/16 sweep (Table 3) on SLURM: 2 x 8 GPUs per job, 2 images per GPU = 32 per step.
TWO_NODES = [
    "experiment=vitb16",
    "sweep=slice_ratio",
    "trainer=ddp",
    "trainer.num_nodes=2",
    "data.batch_size=2",
    "hydra/launcher=slurm",
    "hydra.launcher.gpus_per_node=8",
]

#: The job log's lines carry the PID of the process that ran the job.
PID_LOG = "hydra.job_logging.formatters.simple.format='[%(process)d][%(name)s] %(message)s'"


def without(overrides: list[str], *keys: str) -> list[str]:
    """``overrides`` less those that set one of ``keys``."""
    return [o for o in overrides if o.split("=", 1)[0] not in keys]


def jobs_of(sweep: Path) -> list[Path]:
    """The job directories of a sweep (those with ``.hydra/overrides.yaml``), by job number."""
    jobs = [p.parent.parent for p in sweep.glob("*/.hydra/overrides.yaml")]
    return sorted(jobs, key=lambda p: int(p.name.split("_", 1)[0]))


def hydra_job(job: Path) -> dict:
    return yaml.safe_load((job / ".hydra" / "hydra.yaml").read_text())["hydra"]["job"]


def run_record_field(name: str, value: str) -> bytes:
    """``value`` as the field ``name`` of W&B's RunRecord is encoded in the run's ``.wandb`` records
    (protobuf: key, length, UTF-8), to tell the run's own group and name from the same strings in its config."""
    from wandb.proto import wandb_internal_pb2

    number = wandb_internal_pb2.RunRecord.DESCRIPTOR.fields_by_name[name].number
    data, size, length = value.encode(), len(value.encode()), b""
    while size >= 0x80:
        length, size = length + bytes([size & 0x7F | 0x80]), size >> 7
    return bytes([number << 3 | 2]) + length + bytes([size]) + data


# ----------------------------------------------------------------------------------------------- SLURM
def test_slurm_launcher_config_of_a_two_node_vitb16_sweep() -> None:
    cfg = compose_with_hydra("train", [*TWO_NODES, "hydra.sweep.dir=/scratch/sweeps/p"])
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert launcher["nodes"] == cfg.trainer.num_nodes == 2  # --nodes = Lightning's num_nodes
    assert launcher["tasks_per_node"] == launcher["gpus_per_node"] == 8  # one process per GPU
    assert launcher["gpus_per_task"] is None  # every task sees the node's GPUs (Lightning indexes them)
    assert launcher["signal_delay_s"] > 0 and launcher["max_num_timeout"] > 0  # warned, then requeued
    assert launcher["additional_parameters"] == {"requeue": True}
    assert launcher["submitit_folder"] == "/scratch/sweeps/p/.submitit/%j"
    assert cfg.trainer.devices == "auto"  # trainer=ddp: all GPUs the task sees = gpus_per_node
    (plugin,) = cfg.trainer.plugins  # Lightning's SLURM plugin, its own requeue off (submitit requeues)
    assert plugin._target_ == "lightning.pytorch.plugins.environments.SLURMEnvironment"
    assert plugin.auto_requeue is False
    # every setting of hydra-submitit-launcher's SLURM config is written in the file
    written = yaml.safe_load((REPO_ROOT / "conf" / "hydra" / "launcher" / "slurm.yaml").read_text())
    assert set(written["hydra"]["launcher"]) == set(launcher) - {"_target_"}
    local = yaml.safe_load((REPO_ROOT / "conf" / "hydra" / "launcher" / "local.yaml").read_text())
    local_cfg = compose_with_hydra("train", ["hydra/launcher=local"]).hydra.launcher
    assert set(local) - {"defaults"} == set(local_cfg) - {"_target_"}


def test_lightning_accepts_the_slurm_tasks_of_the_launcher_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job config's Trainer, built under the variables srun sets for the sbatch script of the
    launcher config (8 CPU devices stand in for the 8 GPUs every task sees on its node)."""
    launcher = OmegaConf.to_container(compose_with_hydra("train", TWO_NODES).hydra.launcher, resolve=True)
    nodes, per_node = launcher["nodes"], launcher["tasks_per_node"]
    env = {
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NAME": launcher["name"],
        "SLURM_NNODES": str(nodes),
        "SLURM_NTASKS": str(nodes * per_node),
        "SLURM_NTASKS_PER_NODE": str(per_node),
        "SLURM_NODELIST": "gpu[01-02]",
        "SLURM_PROCID": "9",  # the second task of the second node
        "SLURM_LOCALID": "1",
        "SLURM_NODEID": "1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.setattr(rank_zero_only, "rank", rank_zero_only.rank)  # the Trainer sets it to rank 9
    cpu = ["trainer.accelerator=cpu", "trainer.devices=8", "trainer.precision=32-true"]
    with composed("train", tmp_path, [*without(TWO_NODES, "sweep"), *cpu], base=()) as cfg:
        trainer = make_trainer(cfg)
        environment = trainer.strategy.cluster_environment
        assert isinstance(environment, SLURMEnvironment) and environment.auto_requeue is False
        assert (trainer.world_size, trainer.num_nodes, trainer.global_rank) == (16, 2, 9)
        assert (trainer.local_rank, trainer.node_rank) == (1, 1)
        assert environment.main_address == "gpu01"
        assert environment.world_size() == trainer.world_size  # SLURM's tasks = Lightning's processes
        # Lightning's own check of SLURM's tasks and nodes against devices and num_nodes (its process launcher
        # runs it; under srun the processes exist already, so a mismatch would only show as a wrong world)
        environment.validate_settings(num_devices=trainer.num_devices, num_nodes=trainer.num_nodes)
        monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "4")
        with pytest.raises(ValueError, match="number of tasks per node"):
            environment.validate_settings(num_devices=trainer.num_devices, num_nodes=trainer.num_nodes)


def test_slurm_sweep_submits_one_array_job_with_the_tasks_lightning_needs(tmp_path: Path) -> None:
    """The whole head process of the Table 3 sweep on 2 nodes per job, up to the sbatch call."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scripts = {
        "srun": "#!/bin/sh\nexit 1\n",  # submitit looks for srun before it uses SLURM
        "sbatch": '#!/bin/sh\ncp "$1" "$SBATCH_COPY"\necho "sbatch: no cluster here" >&2\nexit 1\n',
    }
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(stat.S_IRWXU)
    sweep, copy = tmp_path / "sweep", tmp_path / "sbatch.sh"
    args = [*TWO_NODES, "hydra.launcher.partition=gpu", "ckpt_path=last", f"hydra.sweep.dir={sweep}"]
    proc = run_entry_point(
        "mrovseg.train", args, timeout=300, PATH=f"{bin_dir}:{os.environ['PATH']}", SBATCH_COPY=str(copy)
    )
    assert proc.returncode != 0 and "sbatch: no cluster here" in proc.stderr, describe(proc)
    script = copy.read_text()
    options = dict(re.findall(r"^#SBATCH --([\w-]+)=?(.*)$", script, flags=re.M))
    assert options["array"] == "0-5%6"  # the 6 slice ratios of Table 3, one array job
    assert (options["nodes"], options["ntasks-per-node"], options["gpus-per-node"]) == ("2", "8", "8")
    assert options["signal"] == "USR2@120" and options["time"] == "1440" and "requeue" in options
    assert options["partition"] == "gpu" and options["cpus-per-task"] == "8" and options["mem"] == "64GB"
    assert options["output"] == f"{sweep}/.submitit/%A_%a/%A_%a_0_log.out"
    (srun,) = [line for line in script.splitlines() if line.startswith("srun ")]
    assert srun.endswith(f"-m submitit.core._submit {sweep}/.submitit/%j")  # each task runs the pickled job
    assert len(list((sweep / ".submitit").glob("*.pkl"))) == 6


# ---------------------------------------------------------------------------------------------- W&B
def test_wandb_groups_a_multirun_by_its_sweep_and_names_jobs_by_their_overrides() -> None:
    def group_and_name(job_num: int | None) -> tuple[str, str | None]:
        cfg = compose_with_hydra("train", ["logger=many", "model.slice_ratio=0.25", "hydra.sweep.dir=/s/p"])
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = "/s/p/3_model.slice_ratio=0.25"
            if job_num is not None:  # a multirun job; a single run has no job number
                cfg.hydra.job.num = job_num
        HydraConfig.instance().set_config(cfg)
        try:
            return cfg.logger.wandb.group, cfg.logger.wandb.name
        finally:
            HydraConfig.instance().cfg = None  # type: ignore[assignment]

    assert group_and_name(3) == ("/s/p", "model.slice_ratio=0.25")
    assert group_and_name(0) == ("/s/p", "model.slice_ratio=0.25")
    assert group_and_name(None) == ("train", None)  # a single run: as before, W&B names it


# ---------------------------------------------------------------------------------------------- local
def test_local_launcher_runs_each_job_in_its_own_process(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    args = ["-m", "hydra/launcher=local", "clip.pretrained=null", *TINY, "logger=many", PID_LOG]
    args += ["model.slice_ratio=0,0.5", f"hydra.sweep.dir={sweep}"]
    head = subprocess.Popen(
        [sys.executable, "-m", "mrovseg.train", *args],
        cwd=REPO_ROOT,
        env=subprocess_env(WANDB_SILENT="true", WANDB_DIR=str(tmp_path / "wandb_dir")),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out, _ = head.communicate(timeout=600)
    assert head.returncode == 0, out[-4000:]
    jobs = jobs_of(sweep)
    assert [j.name.split("_", 1)[0] for j in jobs] == ["0", "1"]
    pids, ids = set(), set()
    for job, ratio in zip(jobs, ["0", "0.5"]):
        assert f"model.slice_ratio={ratio}" in yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
        assert (job / "metrics.json").is_file() and (job / "checkpoints" / "last.ckpt").is_file()
        job_pids = set(re.findall(r"^\[(\d+)\]\[", (job / "train.log").read_text(), flags=re.M))
        assert len(job_pids) == 1, job_pids  # one process ran the whole job
        pids |= job_pids
        job_id = hydra_job(job)["id"]  # submitit's id of the job: its controller process
        ids.add(job_id)
        logs = sweep / ".submitit" / job_id
        assert "Job completed successfully" in (logs / f"{job_id}_0_log.out").read_text()
        assert (logs / f"{job_id}_0_log.err").is_file() and (logs / f"{job_id}_0_result.pkl").is_file()
        # W&B: the sweep is the group, the job's overrides its name
        (records,) = job.glob("wandb/offline-run-*/run-*.wandb")
        logged = records.read_bytes()
        name = hydra_job(job)[
            "override_dirname"
        ]  # all of the job's overrides, model.slice_ratio=... among them
        assert f"model.slice_ratio={ratio}," in name
        assert run_record_field("run_group", str(sweep)) in logged
        assert run_record_field("display_name", name) in logged
    assert len(pids) == 2 and str(head.pid) not in pids  # two processes, neither the launching one
    assert len(ids) == 2
    # scripts/seeds.py reads the submitit sweep: one row per setting
    table = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "seeds.py"), "--multirun", str(sweep)],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = [line.split(" | ")[0] for line in table.stdout.splitlines()[2:]]
    assert rows == ["| model.slice_ratio=0", "| model.slice_ratio=0.5"], table.stdout
    assert table.stderr == ""  # no unfinished job


@pytest.mark.slow
def test_preempted_local_job_is_requeued_and_resumes_from_its_last_ckpt(tmp_path: Path) -> None:
    """USR2 (what SLURM sends `signal_delay_s` before the time limit, or on preemption) makes submitit
    requeue the job; it runs again in its own job directory and resumes from checkpoints/last.ckpt."""
    sweep = tmp_path / "sweep"
    tiny = without(TINY, "trainer.max_steps", "trainer.val_check_interval")
    args = ["-m", "hydra/launcher=local", "clip.pretrained=null", *tiny, "trainer.max_steps=200"]
    args += ["trainer.val_check_interval=200", "callbacks.latest_checkpoint.every_n_train_steps=2"]
    args += ["ckpt_path=last", f"hydra.sweep.dir={sweep}"]
    with open(tmp_path / "head.log", "w") as log:
        head = subprocess.Popen(
            [sys.executable, "-m", "mrovseg.train", *args],
            cwd=REPO_ROOT,
            env=subprocess_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 400
            while not list(sweep.glob("*/checkpoints/last.ckpt")):
                assert head.poll() is None and time.monotonic() < deadline, "no last.ckpt was written"
                time.sleep(0.2)
            (controller,) = [p.name for p in (sweep / ".submitit").iterdir() if p.name.isdigit()]
            children = Path(f"/proc/{controller}/task/{controller}/children")
            if not children.exists():
                pytest.skip("/proc/<pid>/task/<pid>/children is not available here")
            (task,) = children.read_text().split()
            os.kill(int(task), signal.SIGUSR2)
            assert head.wait(timeout=600) == 0, (tmp_path / "head.log").read_text()[-4000:]
        finally:
            if head.poll() is None:
                head.kill()
    (job,) = jobs_of(sweep)  # the requeued run wrote into the same job directory
    logs = sweep / ".submitit" / controller
    out = (logs / f"{controller}_0_log.out").read_text()
    assert "this job is preempted" in out and f"Requeued job {controller}" in out
    assert out.count("Starting with JobEnvironment") == 2 and "Job completed successfully" in out
    err = (logs / f"{controller}_0_log.err").read_text()
    assert f"Restored all states from the checkpoint at {job}/checkpoints/last.ckpt" in err
    assert (job / "metrics.json").is_file()


# --------------------------------------------------------------------------------------------- Optuna
def test_optuna_search_records_three_trials_and_the_best(tmp_path: Path) -> None:
    import optuna
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides

    sweep = tmp_path / "search"
    searched = ("module.optimizer.lr", "model.adapter.num_queries", "model.adapter.depth")
    args = ["hparams_search=toy", "hydra.sweeper.n_trials=3", "clip.pretrained=null"]
    args += [*without(TINY, *searched), f"hydra.sweep.dir={sweep}"]
    proc = run_entry_point("mrovseg.train", args, timeout=600)
    assert proc.returncode == 0, describe(proc)
    jobs = jobs_of(sweep)
    assert len(jobs) == 3
    trials, values = [], []
    for job in jobs:
        overrides = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
        trials.append(
            {k: yaml.safe_load(v) for k, v in (o.split("=", 1) for o in overrides) if k in searched}
        )
        assert (job / "metrics.json").is_file()
        (value,) = re.findall(r"Succeeded with return value: (\S+)", (job / "train.log").read_text())
        values.append(float(value))
    assert all(set(t) == set(searched) for t in trials) and len({str(t) for t in trials}) == 3
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert result["best_value"] == max(values)
    assert result["best_params"] == trials[values.index(max(values))]
    # fixed seed: the trials are TPE's first proposals for this space and seed, whatever the run
    cfg = compose_with_hydra("train", ["hparams_search=toy"]).hydra.sweeper
    space, _ = create_params_from_overrides([f"{k}={v}" for k, v in cfg.params.items()])
    sampler = optuna.samplers.TPESampler(seed=cfg.sampler.seed, n_startup_trials=cfg.sampler.n_startup_trials)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    for trial, value in zip(trials, values):
        proposed = study.ask()
        for name, distribution in space.items():
            proposed._suggest(name, distribution)
        assert proposed.params == pytest.approx(trial)
        study.tell(proposed, value)
    # scripts/seeds.py tabulates all trials of the search
    table = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "seeds.py"), "--multirun", str(sweep)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert len(table.stdout.splitlines()) == 2 + 3
