"""The import rules of the package, as one table: which module may import which.

Read from the source (every import, function-local and TYPE_CHECKING ones included), so a lazy
import that goes the wrong way counts like any other. The direction is README's module map (and
design.md's): the command line on top, names and errors at the bottom. A module added to the
package needs a row here; an arrow the table does not allow is either a design change (change
the row, and say why in the commit) or a mistake.
"""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from pathlib import Path

import pytest

import selectivity

PACKAGE = Path(selectivity.__file__).parent

# Importable from anywhere: they import nothing of the package (asserted below).
BOTTOM = {"catalog", "errors"}

# Module -> the modules of the package it may import, besides BOTTOM (names without the
# "selectivity." prefix; a package's __init__ is its own name).
ALLOWED: dict[str, set[str]] = {
    # The command line parses and prints; commands does the work of each command.
    "cli": {"commands", "config", "executors", "files", "grid", "keys", "schema", "summary"},
    "commands": {
        "config",
        "lock",
        "corruptions",
        "corruptions.generate",
        "data",
        "evaluation",
        "files",
        "grid",
        "load",
        "measure",
        "probe",
        "report",
        "report.compare",
        "runs",
        "sweep",
        "train",
    },
    # Sweeps know only "run one trial" and which trials (grid), never training itself.
    "sweep": {"comparison", "config", "executors", "files", "grid", "lock", "schema", "trial"},
    # Where trials run and how a sweep stops on signals (no package imports: processes, Ray).
    "executors": set(),
    # One writer per folder.
    "lock": {"files"},
    # Trials compared with each other from the unit responses their evaluations stored.
    "comparison": {"files", "schema", "similarity"},
    "grid": {"config"},
    "trial": {"config", "corruptions", "data", "evaluation", "files", "measure", "runs", "train"},
    "train": {
        "config",
        "data",
        "files",
        "loggers",
        "measure",
        "models",
        "probe",
        "regularizer",
        "robust",
        "runs",
    },
    "loggers": set(),
    "robust": {"attacks", "config", "corruptions", "corruptions.weather", "rng"},
    "load": {"data", "files", "models", "probe", "runs"},
    # The evaluation: its parts (suite) over one context, AutoAttack's part, the part store.
    "evaluation": {
        "config",
        "corruptions.generate",
        "corruptions.tables",
        "data",
        "evaluation.autoattack",
        "evaluation.context",
        "evaluation.parts",
        "evaluation.suite",
        "files",
        "measure",
        "models",
        "probe",
        "runs",
        "schema",
    },
    "evaluation.suite": {
        "attacks",
        "comparison",
        "config",
        "corruptions",
        "corruptions.store",
        "data",
        "evaluation.autoattack",
        "evaluation.context",
        "masking",
        "measure",
        "metrics",
        "models",
        "offaxis",
        "schema",
        "stability",
    },
    "evaluation.autoattack": {
        "attacks",
        "config",
        "data",
        "evaluation.context",
        "files",
        "models",
        "schema",
    },
    "evaluation.context": {"attacks", "config", "data", "probe"},
    "evaluation.parts": {"files", "schema"},
    # Former homes, re-exporting for older imports.
    "evaluate": {"evaluation"},
    "worstcase": {"evaluation.autoattack", "evaluation.context"},
    "measure": {"ablation", "attacks", "data", "metrics", "models", "probe", "schema", "stability"},
    "summary": {"masking", "schema"},
    "masking": {"schema"},
    "attacks": {"models", "rng"},
    "stability": {"metrics", "models", "probe", "rng"},
    "regularizer": {"metrics", "probe"},
    # Off-axis analyses of the first paper: a rotated basis (metrics only), unit ablation (hooks
    # on the probe's sites), similarity between networks and equivalence tests (neither imports
    # the package).
    "offaxis": {"metrics"},
    "ablation": {"models", "probe"},
    "similarity": set(),
    "equivalence": set(),
    # Activation kinds by what they compute; outputs read through models.LogitsOnly.
    "probe": {"activations", "models"},
    "activations": set(),
    "metrics": set(),
    "corruptions": {
        "corruptions.apply",
        "corruptions.generate",
        "corruptions.tables",
        "corruptions.weather",
    },
    "corruptions.generate": {
        "corruptions.ops",
        "corruptions.apply",
        "corruptions.store",
        "corruptions.tables",
        "data",
        "files",
    },
    "corruptions.apply": {
        "corruptions.ops",
        "corruptions.blur",
        "corruptions.digital",
        "corruptions.noise",
        "corruptions.tables",
        "corruptions.weather",
    },
    "corruptions.store": {"data", "files"},
    "corruptions.noise": {"corruptions.ops"},
    "corruptions.blur": {"corruptions.ops"},
    "corruptions.weather": {"corruptions.ops"},
    "corruptions.digital": {"corruptions.ops"},
    "corruptions.ops": {"corruptions.tables", "rng"},
    "corruptions.tables": set(),
    "data": {
        "data.adapt",
        "data.cifar10",
        "data.decode",
        "data.digits",
        "data.folder",
        "data.images",
        "data.svhn",
        "data.tinyimagenet",
    },
    "data.images": {"registry"},
    "data.adapt": {"data.images"},
    "data.decode": {"data.images", "files"},
    "data.digits": {"data.images"},
    "data.cifar10": {"data.images", "files"},
    "data.svhn": {"data.images", "files"},
    "data.folder": {"data.decode", "data.images"},
    "data.tinyimagenet": {"data.decode", "data.images"},
    "models": {"registry"},
    "registry": set(),
    "runs": {"config", "files", "models"},
    "files": set(),
    # TrainConfig asks models for the open registry's names (register_model, entry points: not
    # data) and probe for its units(), both lazily; an EvalConfig needs neither (no torch).
    "config": {"presets", "models", "probe", "ranges"},
    # The range of every numeric key and the one check that reads them (errors only).
    "ranges": set(),
    # What `selectivity keys` lists, read from the config classes.
    "keys": {"config"},
    "presets": set(),
    "schema": set(),
    "rng": set(),
    "catalog": set(),
    "errors": set(),
    "selectivity": set(),  # the package's lazy exports name modules as text
    # Reports read tables only: catalog <- stats <- checks <- methods, worstcase <- claims/
    # (engine <- papers, methods) and figures/ (style <- papers, methods, worstcase) <- html.
    "report": {
        "report.catalog",
        "report.checks",
        "report.claims",
        "report.figures",
        "report.html",
        "report.methods",
        "report.stats",
        "report.trials",
    },
    "report.catalog": set(),
    # Evaluated models side by side (`selectivity compare`): tables to figures and a page.
    "report.compare": {"files", "report.checks", "report.figures.style", "report.stats", "schema"},
    # Each trial's metrics.parquet and selectivity.parquet, found through its trial.json.
    "report.trials": {"files", "report.stats"},
    "report.stats": {"report.catalog", "schema"},
    "report.checks": {"report.stats", "schema"},
    "report.methods": {"report.catalog", "report.stats"},
    "report.gains": {"catalog", "report.methods", "report.stats"},
    "report.worstcase": {"masking", "report.stats"},
    "report.claims": {
        "report.claims.engine",
        "report.claims.firstpaper",
        "report.claims.methods",
        "report.claims.papers",
    },
    # The first paper's claims use the equivalence tests (numpy only, no torch).
    "report.claims.firstpaper": {
        "equivalence",
        "report.checks",
        "report.claims.engine",
        "report.stats",
    },
    "report.claims.engine": {"report.stats"},
    "report.claims.papers": {"masking", "report.checks", "report.claims.engine", "report.stats"},
    "report.claims.methods": {
        "report.checks",
        "report.claims.engine",
        "report.gains",
        "report.methods",
        "report.stats",
    },
    "report.figures": {
        "report.figures.accuracy",
        "report.figures.methods",
        "report.figures.offaxis",
        "report.figures.papers",
        "report.figures.style",
        "report.figures.worstcase",
    },
    "report.figures.style": {"report.stats"},
    "report.figures.papers": {"report.checks", "report.figures.style", "report.stats"},
    "report.figures.methods": {
        "report.checks",
        "report.figures.style",
        "report.methods",
        "report.stats",
    },
    "report.figures.offaxis": {"report.figures.style", "report.stats"},
    "report.figures.accuracy": {"report.figures.papers", "report.figures.style", "report.stats"},
    "report.firstpaper": {
        "report.claims.firstpaper",
        "report.figures.accuracy",
        "report.figures.offaxis",
        "report.figures.style",
        "report.stats",
    },
    "report.figures.worstcase": {
        "masking",
        "report.figures.style",
        "report.stats",
        "report.worstcase",
    },
    "report.html": {
        "files",
        "report.checks",
        "report.claims",
        "report.figures",
        "report.figures.style",
        "report.firstpaper",
        "report.gains",
        "report.methods",
        "report.stats",
        "report.worstcase",
    },
}


def _modules() -> dict[str, Path]:
    """Module name (without "selectivity.") -> its file."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts) or "selectivity"] = path
    return found


MODULES = _modules()


def _imports(name: str) -> list[tuple[str, str | None]]:
    """(imported module, the name taken from it or None) for every import of the package in
    module `name`; `from selectivity.x import y` is module x.y when y is a module."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [
                (alias.name.removeprefix("selectivity."), None)
                for alias in node.names
                if alias.name.startswith("selectivity.")
            ]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against this module's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            elif node.module == "selectivity" or (node.module or "").startswith("selectivity."):
                source = node.module.removeprefix("selectivity").lstrip(".")
            else:
                continue
            for alias in node.names:
                submodule = f"{source}.{alias.name}" if source else alias.name
                found.append((submodule, None) if submodule in MODULES else (source, alias.name))
    return [(module or "selectivity", taken) for module, taken in found]


@functools.cache
def _graph() -> dict[str, set[str]]:
    return {name: {module for module, _ in _imports(name)} - {name} for name in MODULES}


def test_every_module_has_a_row_and_every_row_a_module():
    assert set(MODULES) - set(ALLOWED) == set(), "new modules need a row in ALLOWED"
    assert set(ALLOWED) - set(MODULES) == set(), "rows of modules that no longer exist"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_a_module_imports_only_what_its_row_allows(name):
    allowed = ALLOWED.get(name, set()) | BOTTOM
    assert _graph()[name] - allowed == set()


def test_the_bottom_imports_nothing_of_the_package():
    graph = _graph()
    assert {name: graph[name] for name in BOTTOM} == {name: set() for name in BOTTOM}


def test_no_import_cycles():
    graph = _graph()
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycle = [*path[path.index(name) :], name]
            pytest.fail(f"import cycle: {' -> '.join(cycle)}")
        if name in done:
            return
        for imported in sorted(graph.get(name, ())):
            visit(imported, [*path, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


def _private_imports() -> set[tuple[str, str]]:
    """(importer, module) pairs where an underscore name crosses modules. A private module
    (corruptions.ops) is its package's: importing it from inside that package is fine."""
    found = set()
    for name in MODULES:
        for module, taken in _imports(name):
            leaf = module.rpartition(".")[2]
            if (taken is not None and taken.startswith("_") and module != name) or (
                leaf.startswith("_") and name.rpartition(".")[0] != module.rpartition(".")[0]
            ):
                found.add((name, module))
    return found


def test_no_underscore_name_is_imported_from_another_module():
    assert _private_imports() == set()


def test_the_rules_see_lazy_imports_and_private_names(tmp_path, monkeypatch):
    # The reader itself: a function-local import and an underscore name are both found.
    source = "def f():\n    from selectivity.grid import _require\n    return _require\n"
    fake = tmp_path / "fake.py"
    fake.write_text(source)
    monkeypatch.setitem(MODULES, "fake", fake)
    assert _imports("fake") == [("grid", "_require")]
    assert ("fake", "grid") in _private_imports()


_TORCH_FREE = """
import sys
import selectivity.config as c
c.build(c.EvalConfig, {"corruptions": "fog,frost", "corruption_table": "cifar10",
        "autoattack_version": "rand", "autoattack_attacks": "apgd-ce", "fgsm_eps": "0,8/255"})
for name in ("catalog", "errors", "presets", "grid", "schema", "summary", "masking", "cli"):
    __import__(f"selectivity.{name}")
print("torch" in sys.modules)
"""


def test_validating_an_evaluation_config_and_importing_the_cli_load_no_torch():
    done = subprocess.run(
        [sys.executable, "-c", _TORCH_FREE], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "False\n"
