"""The sharing format of a trained model: a Hub folder, written by ``python -m mrovseg.hub`` and loaded by
``Segmenter.from_pretrained`` and by ``ckpt_path=<folder> | hf://owner/name`` of predict, eval and the demo.

A ``.ckpt`` stays the training format (resume, Lightning); the folder is what is shared, the layout of the
Hugging Face Hub's model repositories. Both rebuild the same model. The folder holds:

* ``model.safetensors``: the module's trained parameters and buffers, i.e. the checkpoint's ``state_dict``
  without the frozen CLIP (keys unchanged; with an EMA of the weights, the averaged ones that are
  evaluated and served). Its metadata holds the sha256 of the config's model part (:func:`config_digest`);
  the same checkpoint gives the same bytes.
* ``config.json``: ``mrovseg_config``, the build config the checkpoint stores (upgraded to today's form,
  :func:`~mrovseg.training.checkpoint_upgrade.upgrade_build_config`), ``mrovseg_clip``, the CLIP's identity
  (its weights are never copied: the config names them), ``trained`` (step, epoch, source file) and
  ``files``: the sha256 and size of ``model.safetensors``.
* ``README.md``: the model card (:mod:`mrovseg.serving.model_card`); documentation, not read on load.

Loading reads JSON and safetensors only, so nothing is unpickled. A missing file, a ``model.safetensors``
whose sha256 is not the one ``config.json`` records, or a ``config.json`` whose model part is not the one
the weights were written with stops the load with an error naming the file (:func:`read_hub_folder`).

:func:`read_model` is the one resolver of ``ckpt_path``: a ``.ckpt`` file, a Hub folder, or ``hf://owner/name``
(``hf://owner/name@revision``), fetched through ``huggingface_hub.snapshot_download``: its cache, its
token, ``HF_HUB_OFFLINE=1`` (the cache only) and ``HF_HUB_CACHE`` apply (:func:`hub_folder`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import torch

from mrovseg.training.checkpoint import CLIP_KEY, CLIP_PREFIX, CONFIG_KEY, read_checkpoint
from mrovseg.training.checkpoint_upgrade import upgrade_build_config

__all__ = ["HubFolderError", "hub_folder", "read_hub_folder", "read_model", "write_model_files"]

FORMAT, FORMAT_VERSION = "mrovseg-hub", 1
CONFIG_FILE, WEIGHTS_FILE, CARD_FILE = "config.json", "model.safetensors", "README.md"
#: The files of a Hub folder; ``python -m mrovseg.hub`` writes these and nothing else.
HUB_FILES = (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE)
HF_SCHEME = "hf://"
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class HubFolderError(ValueError):
    """A Hub folder whose file was altered or is not of this format (the message names the file)."""


# ------------------------------------------------------------------------------------ write
def mrovseg_version() -> str:
    """The installed mrovseg's version (its package metadata; ``mrovseg.__version__`` would import the package
    root, which imports this module)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mrovseg")
    except PackageNotFoundError:
        return "unknown"


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def config_digest(config: dict[str, Any]) -> str:
    """sha256 of a Hub config's model part: everything but ``files`` (which records the weights' own hash),
    as canonical JSON (sorted keys, no spaces)."""
    part = {k: v for k, v in config.items() if k != "files"}
    return hashlib.sha256(json.dumps(part, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def trained_state(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The checkpoint's ``state_dict`` without the frozen CLIP: contiguous CPU copies (safetensors stores
    no shared or strided tensors)."""
    return {
        k: v.detach().cpu().contiguous().clone()
        for k, v in checkpoint["state_dict"].items()
        if not k.startswith(CLIP_PREFIX)
    }


def hub_config(checkpoint: dict[str, Any], source: str, clip_pretrained: str | None = None) -> dict[str, Any]:
    """The model part of ``config.json`` for a checkpoint read by :func:`read_checkpoint` (no ``files``).

    Args:
        source: The checkpoint's file name (recorded in ``trained``).
        clip_pretrained: CLIP weight source to write instead of the checkpoint's (e.g. ``openai`` for a
            model trained from a local copy of those weights).
    """
    stored = checkpoint.get(CONFIG_KEY)
    if stored is None:
        raise ValueError(
            f"{source} stores no build config (mrovseg_config): it was not written by python -m mrovseg.train."
        )
    build = upgrade_build_config(stored)
    if clip_pretrained is not None:
        build["clip"]["pretrained"] = str(clip_pretrained)
    clip = checkpoint.get(CLIP_KEY)
    if clip is not None:  # the source the config names, not the path it resolved to on the training machine
        clip = {**clip, "pretrained": str(build["clip"].get("pretrained"))}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_name": "mrovseg",
        "mrovseg_version": mrovseg_version(),
        CONFIG_KEY: build,
        CLIP_KEY: clip,
        "trained": {
            "global_step": checkpoint.get("global_step"),
            "epoch": checkpoint.get("epoch"),
            "source": Path(source).name,
        },
    }


def _replace(path: Path, write: Any) -> None:
    """Writes ``path`` through a temporary file renamed over it (never a half-written file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def write_model_files(
    checkpoint: dict[str, Any], save_dir: str | Path, source: str, clip_pretrained: str | None = None
) -> dict[str, Any]:
    """Writes ``model.safetensors`` and ``config.json`` of a checkpoint into ``save_dir``; returns the config.

    See :func:`hub_config` for ``source`` and ``clip_pretrained``. The card is written by the caller.
    """
    from safetensors.torch import save

    save_dir = Path(save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    config = hub_config(checkpoint, source, clip_pretrained)
    state = trained_state(checkpoint)
    # one entry: safetensors writes its metadata in a random order, and an export must be byte-reproducible
    metadata = {"mrovseg_config_sha256": config_digest(config)}
    weights = save_dir / WEIGHTS_FILE
    _replace(weights, lambda tmp: tmp.write_bytes(save(state, metadata=metadata)))
    config["files"] = {
        WEIGHTS_FILE: {
            "sha256": sha256_of(weights),
            "size": weights.stat().st_size,
            "tensors": len(state),
            "parameters": sum(v.numel() for v in state.values()),
        }
    }
    text = json.dumps(config, indent=2) + "\n"
    _replace(save_dir / CONFIG_FILE, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return config


# ------------------------------------------------------------------------------------ read
def _missing(folder: Path, name: str) -> FileNotFoundError:
    present = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    return FileNotFoundError(
        f"{name} is missing from the Hub folder {folder} (it holds: {', '.join(present) or 'nothing'}). A Hub "
        f"folder of mrovseg holds {', '.join(HUB_FILES)}, written by python -m mrovseg.hub; download it again "
        "or export it again."
    )


def read_hub_config(folder: str | Path) -> dict[str, Any]:
    """``config.json`` of a Hub folder, checked to be of this format (not the weights; see
    :func:`read_hub_folder`)."""
    folder = Path(folder)
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise _missing(folder, CONFIG_FILE)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise HubFolderError(f"{CONFIG_FILE} in {folder} is damaged (not JSON: {err}).") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise HubFolderError(
            f'{CONFIG_FILE} in {folder} is not the config of an mrovseg Hub folder (no "format": "{FORMAT}"); '
            "such folders are written by python -m mrovseg.hub."
        )
    if int(config.get("format_version", 0)) > FORMAT_VERSION:
        raise HubFolderError(
            f"{CONFIG_FILE} in {folder} has format version {config['format_version']}, newer than this mrovseg "
            f"reads ({FORMAT_VERSION}): upgrade mrovseg."
        )
    return config


def read_hub_folder(folder: str | Path) -> dict[str, Any]:
    """Reads a Hub folder into the form of a checkpoint's contents (``state_dict`` without CLIP, the build
    config under ``CONFIG_KEY``, the CLIP identity under ``CLIP_KEY``), which every loader of checkpoints
    takes (:func:`~mrovseg.training.checkpoint.load_module`). JSON and safetensors only.

    Raises:
        FileNotFoundError: The folder, its ``config.json`` or its ``model.safetensors`` is missing.
        HubFolderError: A file was altered (sha256 or config digest differ) or is not of this format.
    """
    from safetensors import SafetensorError, safe_open

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"Hub folder not found: {folder}.")
    config = read_hub_config(folder)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise _missing(folder, WEIGHTS_FILE)
    recorded = ((config.get("files") or {}).get(WEIGHTS_FILE) or {}).get("sha256")
    actual = sha256_of(weights)
    if actual != recorded:
        raise HubFolderError(
            f"{WEIGHTS_FILE} in {folder} was altered or replaced: its sha256 is {actual}, but {CONFIG_FILE} "
            f"records {recorded}. Download the folder again (or export it again with python -m mrovseg.hub)."
        )
    try:
        with safe_open(str(weights), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118  (safe_open has no __iter__)
    except SafetensorError as err:
        raise HubFolderError(f"{WEIGHTS_FILE} in {folder} is damaged: {err}") from None
    if metadata.get("mrovseg_config_sha256") != config_digest(config):
        raise HubFolderError(
            f"{CONFIG_FILE} in {folder} was altered: its model settings are not the ones {WEIGHTS_FILE} was "
            "written with. Download the folder again or export it again with python -m mrovseg.hub; to read "
            "the CLIP weights from elsewhere, pass clip_pretrained= (CLI: clip.pretrained=) instead of editing it."
        )
    trained = config.get("trained") or {}
    return {
        "state_dict": state,
        CONFIG_KEY: config[CONFIG_KEY],
        CLIP_KEY: config.get(CLIP_KEY),
        "global_step": trained.get("global_step"),
        "epoch": trained.get("epoch"),
    }


# ------------------------------------------------------------------------------------ resolve
def parse_hub_reference(text: str) -> tuple[str, str | None]:
    """``hf://owner/name@revision`` (or ``owner/name``) → ``("owner/name", "revision" or None)``."""
    ref = text[len(HF_SCHEME) :] if text.startswith(HF_SCHEME) else text
    repo_id, _, revision = ref.partition("@")
    if not _REPO_ID.match(repo_id):
        raise ValueError(
            f"{text!r} is not a Hugging Face repository id: expected hf://owner/name[@revision]."
        )
    return repo_id, revision or None


def hub_folder(name_or_path: str | os.PathLike, revision: str | None = None) -> Path:
    """The local folder of a shared model: ``name_or_path`` itself when it is a folder (or a file in one),
    else the snapshot of the Hub repository ``owner/name`` (``hf://owner/name[@revision]``) at ``revision``,
    through ``huggingface_hub.snapshot_download`` (downloaded once into its cache; with ``HF_HUB_OFFLINE=1``
    from the cache only).

    Raises:
        FileNotFoundError: Not a folder, and the repository or revision is not in the cache (offline) or
            on the Hub.
    """
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    if not text.startswith(HF_SCHEME) and (path.is_dir() or path.name in (CONFIG_FILE, WEIGHTS_FILE)):
        if revision is not None:
            raise ValueError(
                f"revision={revision!r} applies to a Hub repository id, not to the folder {text}."
            )
        return path if path.is_dir() else path.parent
    if not text.startswith(HF_SCHEME) and not _REPO_ID.match(text):
        raise FileNotFoundError(
            f"{text} is neither a Hub folder nor a Hugging Face repository id (owner/name)."
        )
    repo_id, ref_revision = parse_hub_reference(text)
    try:
        return Path(_snapshot(repo_id, revision or ref_revision))
    except FileNotFoundError as err:
        if text.startswith(HF_SCHEME):
            raise
        raise FileNotFoundError(f"{text} is no folder here; as a Hugging Face repository id: {err}") from None


def _snapshot(repo_id: str, revision: str | None) -> str:
    """``snapshot_download`` of the Hub folder's files, its errors in words."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.utils import LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    at = f" at revision {revision}" if revision else ""
    try:
        return snapshot_download(
            repo_id,
            revision=revision,
            allow_patterns=list(HUB_FILES),
            library_name="mrovseg",
            library_version=mrovseg_version(),
        )
    except RevisionNotFoundError:
        raise FileNotFoundError(f"The Hub repository {repo_id} has no revision {revision}.") from None
    except RepositoryNotFoundError:
        raise FileNotFoundError(
            f"No Hub repository {repo_id} (or it is private: log in with `hf auth login` or set HF_TOKEN)."
        ) from None
    except LocalEntryNotFoundError as err:
        offline = " (HF_HUB_OFFLINE=1: cache only)" if constants.HF_HUB_OFFLINE else ""
        raise FileNotFoundError(
            f"The Hub repository {repo_id}{at} is not in the Hugging Face cache {constants.HF_HUB_CACHE}{offline} "
            f"and could not be downloaded: {err}. Download it once where the Hub is reachable, or pass a folder."
        ) from None


def is_hub_source(source: str | os.PathLike) -> bool:
    """Whether a ``ckpt_path`` names a Hub folder (or a file in one) or ``hf://owner/name``, not a ``.ckpt``."""
    text = os.fspath(source)
    path = Path(text).expanduser()
    return text.startswith(HF_SCHEME) or path.is_dir() or path.name in (CONFIG_FILE, WEIGHTS_FILE)


def read_model(source: str | os.PathLike) -> dict[str, Any]:
    """The one resolver of ``ckpt_path`` (predict, eval, the demo, ``Segmenter.from_checkpoint``): the
    contents of a ``.ckpt`` file (:func:`~mrovseg.training.checkpoint.read_checkpoint`) or of a Hub folder,
    local or ``hf://owner/name[@revision]`` (:func:`read_hub_folder` of :func:`hub_folder`)."""
    if is_hub_source(source):
        return read_hub_folder(hub_folder(source))
    return read_checkpoint(source)
