"""``import cvalue`` and ``cvalue --help`` load none of the heavy libraries (issue 17, item 5).

The command line answered ``--help`` in 2.3 s because importing it imported the whole library
(pandas, SciPy, SQLAlchemy). The package now imports each public name from its module on first
use, and the commands import the library when they run. What is measured is the set of modules
imported, not the time.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import cvalue

HEAVY = ("pandas", "scipy", "sqlalchemy", "matplotlib", "duckdb", "dask", "pydantic")
INIT = Path(cvalue.__file__)


def imported_after(code: str) -> set[str]:
    """The top-level packages a fresh interpreter has imported after running ``code``."""
    script = (
        f"import sys\n{code}\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    )
    found = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           check=True)  # fmt: skip
    return set(found.stdout.split())


@pytest.mark.parametrize("code", ["import cvalue", "import cvalue.cli",
                                  "from cvalue.cli import app"])  # fmt: skip
def test_importing_loads_no_heavy_library(code):
    assert not imported_after(code) & set(HEAVY)


def test_help_runs_without_the_heavy_libraries():
    code = ("from typer.testing import CliRunner\nfrom cvalue.cli import app\n"
            "result = CliRunner().invoke(app, ['--help'])\nassert result.exit_code == 0\n"
            "assert 'score' in result.output")  # fmt: skip
    assert not imported_after(code) & set(HEAVY)


def test_every_public_name_loads_and_is_listed():
    for name in cvalue.__all__:
        assert getattr(cvalue, name) is not None, name
        assert name in dir(cvalue), name
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        _ = cvalue.not_a_name


def test_the_type_checkers_imports_are_the_lazy_table():
    """The names type checkers see (the TYPE_CHECKING block) are those loaded on first use."""
    tree = ast.parse(INIT.read_text(encoding="utf-8"))
    block = next(node for node in tree.body if isinstance(node, ast.If))
    seen: dict[str, tuple[str, ...]] = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom)
        if node.module != "cvalue":
            seen[str(node.module)] = tuple(alias.name for alias in node.names)
    assert seen == cvalue._MODULE_NAMES
    listed = {name for names in seen.values() for name in names} | set(cvalue._SUBMODULES)
    assert listed | {"__version__"} == set(cvalue.__all__)
