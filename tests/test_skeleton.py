"""The package's skeleton (docs/layout.md): one-way imports, a pure-torch ``model/``, small files, and
checkpoints of the earlier layout that keep loading.

The import graph is read from the source (every ``import`` statement, also those inside functions,
which is where a cycle hides), so these tests need no import of the package's heavy parts.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import mrovseg
from mrovseg.constants import REPO_ROOT

PACKAGE = Path(mrovseg.__file__).resolve().parent
FIXTURES = Path(__file__).parent / "fixtures" / "checkpoints_0_1"
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The ``mrovseg`` modules a file imports (``from a.b import c``: ``a.b.c`` if it is a module)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules]
            names = names or [node.module]
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name.startswith("mrovseg"):
                out.add(name)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (a list of modules, first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, set())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_cycle_finder_finds_a_planted_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_inside_the_package() -> None:
    assert _cycle(_graph()) is None


def test_model_is_pure_torch() -> None:
    """``model/`` imports neither Lightning, Hydra, nor the data, training or serving packages."""
    offenders = []
    for path in (PACKAGE / "model").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")
                if top[0] in ("lightning", "pytorch_lightning", "hydra") or top[:2] in (
                    ["mrovseg", "data"],
                    ["mrovseg", "training"],
                    ["mrovseg", "serving"],
                    ["mrovseg", "demo"],
                ):
                    offenders.append(f"{path.relative_to(PACKAGE)}: {name}")
    assert not offenders, offenders


def test_no_source_file_over_400_lines() -> None:
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, long


def test_configs_have_one_home() -> None:
    """``conf/`` at the top of the clone is where the configs live, and what the package reads."""
    from mrovseg.config import CONF_DIR

    assert (REPO_ROOT / "conf" / "experiment" / "vitb16.yaml").is_file()
    assert CONF_DIR.resolve() == (REPO_ROOT / "conf").resolve()
    assert not (PACKAGE / "conf").exists(), "a second copy of the configs inside src/mrovseg"


def test_methods_are_chosen_by_config_not_by_target_strings() -> None:
    """No ``endswith("...Module")``-style sniffing of ``_target_`` strings in the entry points."""
    for name in ("eval.py", "train.py", "predict.py"):
        text = (PACKAGE / name).read_text()
        assert ".endswith(" not in text or "_target_" not in text, name


# ----------------------------------------------------------------------------- earlier checkpoints
@pytest.mark.parametrize("method", ["mrovseg", "ovseg", "mgca"])
def test_checkpoints_of_the_earlier_layout_load_and_predict_the_same_labels(method: str) -> None:
    """Checkpoints written by the code before the move (commit 64732b5; tiny toy models, 2 steps; made
    by the commands in tests/fixtures/checkpoints_0_1/README.md) name classes that have moved; they
    load through the one table of moved targets and give the labels that code gave."""
    import torch

    from mrovseg.serving.segmenter import Segmenter
    from mrovseg.training.checkpoint import CONFIG_KEY, read_checkpoint
    from mrovseg.training.checkpoint_upgrade import MOVED_TARGETS

    path = FIXTURES / f"{method}.ckpt"
    stored = read_checkpoint(path)[CONFIG_KEY]
    assert stored["module"]["_target_"] in MOVED_TARGETS  # really the old layout
    expected = np.load(FIXTURES / "expected_labels.npz")
    torch.manual_seed(0)
    result = Segmenter.from_checkpoint(path, precision="fp32")(expected["image"], vocabulary="toy")
    np.testing.assert_array_equal(result.labels, expected[method])


def test_moved_targets_resolve() -> None:
    """Every new home in the table exists."""
    from hydra.utils import get_method

    from mrovseg.training.checkpoint_upgrade import MOVED_TARGETS

    for old, new in MOVED_TARGETS.items():
        assert callable(get_method(new)), (old, new)


def test_checkpoint_whose_baseline_config_carries_mrovseg_options_still_loads(tmp_path: Path) -> None:
    """Before the move the baselines swallowed MROVSeg's options (``model=ovseg`` on the toy experiment
    stored ``slice_ratio``, ``adapter``, ...); now they reject unknown options, and loading drops them."""
    import torch

    from mrovseg.serving.segmenter import Segmenter
    from mrovseg.training.checkpoint import CONFIG_KEY

    ckpt = torch.load(FIXTURES / "ovseg.ckpt", map_location="cpu", weights_only=True)
    ckpt[CONFIG_KEY]["model"].update(slice_ratio=0.5, num_cls_blocks=2, adapter={"dim": 96, "depth": 3})
    path = tmp_path / "ovseg_with_mrovseg_options.ckpt"
    torch.save(ckpt, path)
    expected = np.load(FIXTURES / "expected_labels.npz")
    result = Segmenter.from_checkpoint(path, precision="fp32")(expected["image"], vocabulary="toy")
    np.testing.assert_array_equal(result.labels, expected["ovseg"])


def test_every_console_script_points_at_a_function() -> None:
    import importlib

    tomllib = pytest.importorskip("tomllib")
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for name, target in scripts.items():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func, None)), (name, target)
