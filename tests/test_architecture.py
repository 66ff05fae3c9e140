"""The shape of the house (docs/architecture.md), checked on the source so that it stays true.

- Layers: a package imports only from packages below it, never from one above or beside it
  (so there is no import cycle between packages, and a lower layer can be read on its own).
- No private name (``_name``, or any name of a ``_module``) is imported from another package:
  what a package offers the others is public and documented.
- No module is longer than 800 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src" / "cvalue"
MAX_LINES = 800

# each top-level package or module of cvalue, by layer: an import must go to a lower number
LAYERS: dict[str, int] = {
    "errors": 0, "_version": 0, "units": 1, "samples": 1,
    "io": 2, "datasets": 2, "dask": 2,
    "patterns": 3, "purchases": 3,
    "summary": 4,
    "models": 5,
    "lifecycle": 6, "value": 6, "segments": 6, "evaluation": 6,
    "metrics": 7, "config": 7, "compat": 7, "trends": 7,
    "results": 8, "plot": 8,
    "report": 9,
    "job": 10,
    "cli": 11,
    "__main__": 12, "cvalue": 12,
}  # fmt: skip
# (importer, imported): the one upward import left, kept for one release behind a
# DeprecationWarning: cvalue.io.sql_customer_profitability, now cvalue.segments'
ALLOWED_UPWARD = {("io", "segments")}


def module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "cvalue"


def imports_of(path: Path) -> list[tuple[str, str | None]]:
    """``(module, name)`` of every import of cvalue in a file; name None for ``import x``."""
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] == "cvalue":
                found.extend(_imported(node.module, alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            found.extend((a.name, None) for a in node.names if a.name.split(".")[0] == "cvalue")
    return found


def _imported(module: str, name: str) -> tuple[str, str | None]:
    """``from cvalue import purchases`` imports the module cvalue.purchases, not a name."""
    if module == "cvalue" and ((SOURCE / f"{name}.py").is_file() or (SOURCE / name).is_dir()):
        return f"cvalue.{name}", None
    return module, name


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


FILES = sorted(SOURCE.rglob("*.py"))


def test_every_package_has_a_layer() -> None:
    units = {unit_of(module_name(path)) for path in FILES}
    assert units <= set(LAYERS), f"give {sorted(units - set(LAYERS))} a layer in LAYERS"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(SOURCE)))
def test_imports_go_down_and_only_to_public_names(path: Path) -> None:
    importer = module_name(path)
    here = unit_of(importer)
    upward, private = [], []
    for module, name in imports_of(path):
        there = unit_of(module)
        if there == here or (module == "cvalue" and here == "cvalue"):
            continue
        if LAYERS[there] >= LAYERS[here] and (here, there) not in ALLOWED_UPWARD:
            upward.append(module)
        hidden = [part for part in module.split(".")[1:] if is_private(part)]
        if there != "_version" and (hidden or (name is not None and is_private(name))):
            private.append(f"{module}.{name}" if name else module)
    assert not upward, f"{importer} (layer {LAYERS[here]}) imports upward or sideways: {upward}"
    assert not private, f"{importer} imports private names of other packages: {private}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(SOURCE)))
def test_no_module_is_over_800_lines(path: Path) -> None:
    n_lines = len(path.read_text(encoding="utf-8").splitlines())
    assert n_lines <= MAX_LINES, f"{path.relative_to(SOURCE)} has {n_lines} lines; split it"
