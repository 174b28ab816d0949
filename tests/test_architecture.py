"""Rules of the package's layout, checked on the source with ``ast`` (nothing is imported).

No private name crosses a module boundary: a module does not import another module's
underscore names (``from .x import _name``, ``from contractive.x import _name``) nor reach for
them through an imported module (``from . import x`` then ``x._name``). A helper that two
modules need is public (documented, in ``__all__``, with an example) in the module where it
belongs. Dunder names (``__version__``) are not private.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "contractive"
BENCHMARKS = ROOT / "benchmarks"

# Modules (with their submodules) and scripts that are not checked, with why. Empty: every
# module and benchmark is checked. Only ever remove entries.
ALLOWED: dict[str, str] = {}


@dataclass(frozen=True)
class Source:
    path: Path
    name: str  # dotted module name, or the path under the repository for a script
    package: str | None  # the package relative imports resolve against


def _sources() -> list[Source]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_init = parts[-1] == "__init__"
        if is_init:
            parts.pop()
        name = ".".join(parts)
        found.append(Source(path, name, name if is_init else ".".join(parts[:-1])))
    for path in sorted(BENCHMARKS.glob("*.py")):
        found.append(Source(path, path.relative_to(ROOT).as_posix(), None))
    return found


SOURCES = _sources()
MODULES = {s.name for s in SOURCES if s.package is not None}


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _imported_from(source: Source, node: ast.ImportFrom) -> str | None:
    """The absolute name of the contractive module ``node`` imports from, else None."""
    if node.level == 0:
        module = node.module or ""
        return module if module.split(".")[0] == "contractive" else None
    assert source.package is not None, f"{source.name}: relative import outside the package"
    base = source.package.split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def private_imports(source: Source) -> list[str]:
    """``line: what`` for every private name ``source`` takes from another module."""
    tree = ast.parse(source.path.read_text(encoding="utf-8"), filename=str(source.path))
    found: list[str] = []
    modules: set[str] = set()  # local names bound to contractive modules
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            origin = _imported_from(source, node)
            if origin is None:
                continue
            for alias in node.names:
                if _is_private(alias.name):
                    found.append(f"{node.lineno}: from {origin} import {alias.name}")
                elif f"{origin}.{alias.name}" in MODULES:
                    modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "contractive" and alias.asname:
                    modules.add(alias.asname)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and _is_private(node.attr)
        ):
            found.append(f"{node.lineno}: {node.value.id}.{node.attr}")
    return found


def _allowed_by(name: str) -> str | None:
    """The entry of ALLOWED that covers the module or script ``name``, if any."""
    return next((e for e in ALLOWED if name == e or name.startswith(e + ".")), None)


def test_the_sources_are_found() -> None:
    assert {"contractive", "contractive.cli", "contractive.cli.common", "contractive.analysis"} <= (
        MODULES
    )
    assert "benchmarks/train_mnist.py" in {s.name for s in SOURCES}


@pytest.mark.parametrize("source", [pytest.param(s, id=s.name) for s in SOURCES])
def test_no_private_name_is_imported_from_another_module(source: Source) -> None:
    entry = _allowed_by(source.name)
    if entry is not None:
        pytest.skip(f"not checked yet: {ALLOWED[entry]}")
    assert private_imports(source) == []


def test_the_check_sees_each_form(tmp_path: Path) -> None:
    code = (
        "from . import nn, __version__\n"
        "from .penalties import _flatten, jacobian_penalty\n"
        "from contractive.data import _CHUNK_ELEMENTS\n"
        "import contractive.runs as runs\n"
        "nn._helper\n"
        "runs._check_meta\n"
        "nn.Autoencoder\n"
    )
    (tmp_path / "mod.py").write_text(code)
    found = private_imports(Source(tmp_path / "mod.py", "contractive.mod", "contractive"))
    assert found == [
        "2: from contractive.penalties import _flatten",
        "3: from contractive.data import _CHUNK_ELEMENTS",
        "5: nn._helper",
        "6: runs._check_meta",
    ]
