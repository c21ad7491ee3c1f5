"""The report package's own import rules: every module imports only the report modules below it
(the table), and none imports an underscore name of another module (what modules share is public
where it lives)."""

import ast
from pathlib import Path

import selectivity.report

PACKAGE = Path(selectivity.report.__file__).parent

# Each module of the package and its layer: a module may import report modules of lower layers
# only (a package's __init__ may import its own modules, which it re-exports).
LAYERS = {
    "catalog": 0,
    "stats": 1,
    "checks": 2,
    "trials": 2,
    "methods": 3,
    "worstcase": 3,
    "gains": 4,
    "claims.engine": 4,
    "claims.papers": 5,
    "claims.methods": 5,
    "claims.firstpaper": 5,
    "claims": 6,
    "figures.style": 4,
    "figures.papers": 5,
    "figures.methods": 5,
    "figures.worstcase": 5,
    "figures.offaxis": 5,
    "figures.accuracy": 6,
    "figures": 7,
    "firstpaper": 7,
    "html": 8,
    "": 9,
}


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _report_imports(path: Path):
    """(imported report module, names) for every `from selectivity.report... import ...`."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "selectivity.report"
        ):
            target = node.module.removeprefix("selectivity.report").removeprefix(".")
            yield target, [alias.name for alias in node.names]


MODULES = {_module(path): path for path in PACKAGE.rglob("*.py")}


def test_the_table_names_every_module_of_the_package():
    assert sorted(MODULES) == sorted(LAYERS)


def test_no_module_imports_an_underscore_name_of_another():
    private = [
        f"{name}: {target}.{imported}"
        for name, path in MODULES.items()
        for target, names in _report_imports(path)
        for imported in names
        if imported.startswith("_")
    ]
    assert private == []


def test_every_module_imports_only_modules_below_it():
    upward = [
        f"{name} imports {target}"
        for name, path in MODULES.items()
        for target, _ in _report_imports(path)
        if LAYERS[target] >= LAYERS[name] and not target.startswith(f"{name}.")
    ]
    assert upward == []
