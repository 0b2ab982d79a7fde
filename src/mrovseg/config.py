"""Hydra plumbing shared by the entry points: the config folder and the ``asset`` resolver."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from mrovseg.constants import ASSETS_DIR

#: The Hydra config folder, shipped inside the package (``mrovseg/conf``), so an installed wheel
#: finds it from any working directory.
CONF_DIR: Path = Path(__file__).resolve().parent / "conf"


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
