"""The project's own files install everything it imports.

A package imported directly but reached only through another dependency (pydantic through
dagster, numpy through pandas) installs today and breaks the day that dependency drops it.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OURS = {"nto_etl", "benchmarks", "nto_etl_tests"}
# What each folder may import: the package and the benchmarks what `pip install .` brings,
# the tests also the `dev` extra.
ALLOWED = {
    "nto_etl": ("dependencies",),
    "benchmarks": ("dependencies",),
    "nto_etl_tests": ("dependencies", "dev"),
}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(groups: tuple[str, ...]) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = [
        r
        for group in groups
        for r in (
            project["dependencies"] if group == "dependencies" else project["optional-dependencies"][group]
        )
    ]
    names = set()
    for requirement in requirements:
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
        assert match, f"pyproject.toml: cannot read the requirement {requirement!r}"
        names.add(_canonical(match.group()))
    return names


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module.split(".")[0])
    return modules


def test_every_third_party_import_is_a_declared_dependency() -> None:
    distributions = importlib.metadata.packages_distributions()
    undeclared = []
    for folder, groups in ALLOWED.items():
        declared = _declared(groups)
        for path in sorted((ROOT / folder).rglob("*.py")):
            for module in sorted(_imported_modules(path) - OURS - set(sys.stdlib_module_names)):
                providers = {_canonical(d) for d in distributions.get(module, [])}
                assert providers, (
                    f"{path.relative_to(ROOT)} imports {module}, which no installed package provides"
                )
                if not providers & declared:
                    undeclared.append(f"{path.relative_to(ROOT)}: {module} ({', '.join(sorted(providers))})")
    assert not undeclared, "imported but not in pyproject.toml's dependencies:\n" + "\n".join(undeclared)
