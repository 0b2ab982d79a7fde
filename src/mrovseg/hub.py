"""Share a trained model the way the field does: a Hugging Face Hub folder, optionally uploaded.

    python -m mrovseg.hub ckpt_path=<run>/checkpoints/last.ckpt save_dir=<dir>        # or: mrovseg-hub ...
    python -m mrovseg.hub ckpt_path=<...>.ckpt save_dir=<dir> push=true repo_id=owner/name

Writes into ``save_dir`` (:mod:`mrovseg.serving.hub_format`) ``model.safetensors`` (the trained parameters
only: CLIP's frozen weights are named by the config, never copied), ``config.json`` (the build config the
checkpoint stores, upgraded, with the CLIP's identity and the weights' sha256) and ``README.md``, a model
card generated from the run (:mod:`mrovseg.serving.model_card`: method and paper, CLIP, training data and
schedule, the run's ``metrics.json`` table, license, the command that trained it, how to load it). The
folder is read back and checked before anything is uploaded. This is also the converter of older
checkpoints: their build config is upgraded on the way (:mod:`mrovseg.training.checkpoint_upgrade`).

``push=true repo_id=owner/name`` then uploads the folder with ``huggingface_hub`` (``HfApi.create_repo``
and ``upload_folder``; the token of ``hf auth login`` or ``HF_TOKEN``). Load it anywhere with
``Segmenter.from_pretrained("owner/name")`` or ``ckpt_path=hf://owner/name`` (predict, eval, the demo).
Settings: ``conf/hub.yaml``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, ListConfig

from mrovseg.config import CONF_DIR

log = logging.getLogger(__name__)


def check_save_dir(save_dir: Path) -> None:
    """Refuses a ``save_dir`` that holds other files than a Hub folder's (an upload would take them along)."""
    from mrovseg.config_checks import directory_problem
    from mrovseg.serving.hub_format import HUB_FILES

    problem = directory_problem("save_dir", save_dir)
    if problem:
        raise ValueError(problem)
    if save_dir.is_dir():
        other = sorted(
            p.name for p in save_dir.iterdir() if p.name not in HUB_FILES and not p.name.startswith(".")
        )
        if other:
            raise ValueError(
                f"save_dir={save_dir} holds other files ({', '.join(other[:5])}) that push=true would upload too; "
                "give an empty or new folder."
            )


def export(cfg: DictConfig) -> Path:
    """Writes the Hub folder of ``cfg.ckpt_path`` into ``cfg.save_dir`` (and uploads it with ``push=true``);
    returns the folder."""
    from mrovseg.config_checks import check_config
    from mrovseg.serving.hub_format import CARD_FILE, HUB_FILES, read_hub_folder, write_model_files
    from mrovseg.serving.model_card import find_run, render_card
    from mrovseg.training.checkpoint import read_checkpoint

    check_config(cfg)
    if not cfg.get("ckpt_path"):
        raise ValueError("ckpt_path is required: pass ckpt_path=<checkpoint written by mrovseg.train>.")
    if cfg.get("push") and not cfg.get("repo_id"):
        raise ValueError("push=true needs repo_id=<owner>/<name>, the Hub repository to upload to.")
    save_dir = Path(str(cfg.save_dir)).expanduser()
    check_save_dir(save_dir)
    ckpt_path = Path(str(cfg.ckpt_path)).expanduser()
    checkpoint = read_checkpoint(ckpt_path)  # tensors and plain data only (weights_only)
    config = write_model_files(checkpoint, save_dir, ckpt_path.name, cfg.get("clip_pretrained"))
    metrics = cfg.get("metrics")
    if isinstance(metrics, str):
        metrics = [metrics]
    run = find_run(ckpt_path, list(metrics) if isinstance(metrics, (list, ListConfig)) else None)
    card = render_card(
        config, run, repo_id=cfg.get("repo_id"), license=str(cfg.license), title=cfg.get("title")
    )
    (save_dir / CARD_FILE).write_text(card, encoding="utf-8")
    read_hub_folder(save_dir)  # what was written reads back and passes its own checks
    for name in HUB_FILES:
        log.info("%10d bytes  %s", (save_dir / name).stat().st_size, save_dir / name)
    if not run.metrics:
        log.warning("No metrics.json next to %s's run: the model card has no results.", ckpt_path)
    if cfg.get("push"):
        url = push_folder(
            save_dir, str(cfg.repo_id), bool(cfg.private), cfg.get("revision"), cfg.get("commit_message")
        )
        log.info("Uploaded to %s", url)
    return save_dir


def push_folder(
    folder: Path, repo_id: str, private: bool = False, revision: str | None = None, message: str | None = None
) -> Any:
    """Uploads a Hub folder through ``huggingface_hub`` (creating the repository, and ``revision`` as a branch,
    when missing); returns the commit's URL."""
    from huggingface_hub import HfApi

    from mrovseg.serving.hub_format import HUB_FILES

    api = HfApi()
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    if revision:
        api.create_branch(repo_id, branch=revision, repo_type="model", exist_ok=True)
    info = api.upload_folder(
        repo_id=repo_id,
        folder_path=str(folder),
        repo_type="model",
        revision=revision,
        allow_patterns=list(HUB_FILES),
        commit_message=message or f"Upload {repo_id} (mrovseg.hub)",
    )
    return getattr(info, "commit_url", info)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="hub")
def main(cfg: DictConfig) -> None:
    """Hydra entry point (``python -m mrovseg.hub``, ``mrovseg-hub``)."""
    export(cfg)


if __name__ == "__main__":
    main()
