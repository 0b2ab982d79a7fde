"""Constants shared by `model/`, `data/` and the entry points."""

from pathlib import Path

#: The single internal ignore index used for labels everywhere after loading.
#: Datasets map their on-disk ignore values (255 for uint8 PNG, 65535 for uint16 TIFF) to it.
#: It is negative because ADE-847 and PC-459 use label values above 255.
IGNORE_INDEX: int = -1

#: Short side evaluation images are resized to unless a dataset config says otherwise (the paper's 640);
#: also predict's default for a checkpoint that stores none.
DEFAULT_EVAL_SHORT_SIDE: int = 640

#: Folder of files shipped inside the package (the toy CLIP checkpoint and its config).
ASSETS_DIR: Path = Path(__file__).resolve().parent / "assets"

#: Repository root of a clone (scripts/, tests/); meaningless for a wheel install.
REPO_ROOT: Path = Path(__file__).resolve().parents[2]
