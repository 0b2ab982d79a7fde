"""Hydra plumbing shared by the entry points: the config folder and the ``asset`` resolver."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from mrovseg.constants import ASSETS_DIR, REPO_ROOT


def _conf_dir() -> Path:
    """The one home of the configs: ``conf/`` at the top of the repository. A wheel (or ``pip install
    git+...``) ships that same folder inside the package as ``mrovseg/conf`` (pyproject.toml,
    ``force-include``), so an installed package finds it from any working directory; an editable
    install of a clone reads the clone's ``conf/`` directly."""
    shipped = Path(__file__).resolve().parent / "conf"
    if (shipped / "train.yaml").is_file():
        return shipped
    clone = REPO_ROOT / "conf"
    if (clone / "train.yaml").is_file():
        return clone
    raise FileNotFoundError(
        f"The Hydra configs were found neither in {shipped} (an installed wheel) nor in {clone} (a clone). "
        "Reinstall the package (pip install mrovseg, or make install in a clone)."
    )


#: The Hydra config folder (see :func:`_conf_dir`).
CONF_DIR: Path = _conf_dir()


def asset_path(relative: str) -> str:
    """Absolute path of a file shipped in ``src/mrovseg/assets`` (``${asset:toy_clip/x.pt}`` in configs)."""
    path = ASSETS_DIR / relative
    if not path.exists():
        raise FileNotFoundError(f"Packaged asset not found: {path}. Reinstall the package (make install).")
    return str(path)


def job_dirname(overrides: str, max_length: int = 120) -> str:
    """A file name from a sweep job's overrides (``${job_dirname:${hydra.job.override_dirname}}``).

    ``/`` (in paths given as overrides) becomes ``-`` and long names are cut to ``max_length``
    characters, since a file name has at most 255; the job number in front keeps names unique.
    """
    name = str(overrides).replace("/", "-")
    return name if len(name) <= max_length else name[: max_length - 3] + "..."


if not OmegaConf.has_resolver("asset"):
    OmegaConf.register_new_resolver("asset", asset_path)
if not OmegaConf.has_resolver("job_dirname"):
    OmegaConf.register_new_resolver("job_dirname", job_dirname)
