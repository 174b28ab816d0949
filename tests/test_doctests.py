"""The docstring examples of every module in ``src/contractive`` run here, one test per module.

This is the only place doctests are collected (``make test`` runs it with the rest of the
suite): every module that ``pkgutil.walk_packages`` finds in the package, and the package's own
``__init__``, is a parametrized test named after the module, e.g.
``test_docstring_examples[contractive.penalties]``, so a new module is covered without being
listed anywhere. Each runs with ELLIPSIS and NORMALIZE_WHITESPACE, in an empty temporary
working folder, each docstring from the same random state.

A second test keeps the examples there: every public function and class (a name in a module's
``__all__`` defined in that module) needs a numpydoc ``Examples`` section with at least one
example that runs (not ``# doctest: +SKIP``).
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil
import re
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

import contractive

OPTIONFLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

# Modules whose examples fail today, with why. Each is an xfail(strict=True): it must fail, so
# that a module whose examples are fixed fails here until its entry is removed. Empty this.
KNOWN_FAILURES: dict[str, str] = {}

# Public functions and classes that have no runnable example yet, by module. The test fails for
# a public name without one that is not listed here, and for a listed name that has one now, so
# the list only shrinks. Every module listed here is maintained elsewhere; empty this.
EXAMPLES_TO_WRITE: dict[str, frozenset[str]] = {
    "contractive.analysis": frozenset({"Analysis", "ContractionCurve", "Tangents"}),
    "contractive.callbacks": frozenset(
        {"EpochLogger", "ProgressBar", "RunWriter", "format_metrics"}
    ),
    "contractive.evaluate": frozenset({"FinetuneEpoch", "FinetuneResult", "ProbeResult"}),
    # The runner, the pool and the renderer need a whole run's rows or MNIST to show anything.
    "contractive.experiments.pool": frozenset({"WorkerPool"}),
    "contractive.experiments.render": frozenset({"markdown", "write_outputs"}),
    "contractive.experiments.runner": frozenset(
        {
            "ValueResult",
            "finish_model",
            "load_mnist",
            "pretrain_value",
            "run_models",
            "run_table1",
        }
    ),
    "contractive.experiments.table2_runner": frozenset({"run_table2"}),
    "contractive.cli.reproduce": frozenset({"cmd_reproduce"}),
    "contractive.stopping": frozenset({"StoppingState"}),
    "contractive.train": frozenset(
        {"Callback", "EarlyStoppingLog", "EpochMetrics", "TrainingInterrupted", "resolve_device"}
    ),
    "contractive.workflow": frozenset({"PreparedData", "prepare_data", "resume_run"}),
}


def _module_names() -> list[str]:
    """``contractive`` and every module and subpackage under it, sorted."""
    found = pkgutil.walk_packages(contractive.__path__, prefix="contractive.")
    return sorted({"contractive", *(info.name for info in found)})


MODULES = _module_names()


def _param(name: str) -> object:
    if name in KNOWN_FAILURES:
        mark = pytest.mark.xfail(reason=KNOWN_FAILURES[name], strict=True)
        return pytest.param(name, marks=mark, id=name)
    return pytest.param(name, id=name)


def test_every_module_is_found() -> None:
    src = Path(contractive.__file__).parent
    on_disk = {f"contractive.{p.stem}" for p in src.glob("*.py") if p.stem != "__init__"}
    assert on_disk | {"contractive"} <= set(MODULES)
    assert {"contractive.penalties", "contractive.train", "contractive.__main__"} <= set(MODULES)
    assert set(KNOWN_FAILURES) <= set(MODULES)
    assert set(EXAMPLES_TO_WRITE) <= set(MODULES)


@pytest.mark.parametrize("name", [_param(name) for name in MODULES])
def test_docstring_examples(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_thread: None
) -> None:
    # A relative path in an example lands in this empty folder, never in the repository.
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(name)
    tests = doctest.DocTestFinder(exclude_empty=True).find(module, name)
    # An example the finder does not see never runs: e.g. in the docstring of a function whose
    # decorator does not keep its __globals__ (the finder takes it for another module's).
    found = sum(len(test.examples) for test in tests)
    written = len(re.findall(r"^\s*>>>", inspect.getsource(module), flags=re.MULTILINE))
    assert found == written, f"{name}: {written} '>>>' lines in the source, {found} examples found"
    runner = doctest.DocTestRunner(optionflags=OPTIONFLAGS)
    report: list[str] = []
    for test in sorted(tests, key=lambda t: t.name):
        torch.manual_seed(0)
        np.random.seed(0)  # noqa: NPY002 - examples may use the legacy global state
        runner.run(test, out=report.append)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} failing example(s) in {name}:\n" + "".join(report)


def _runnable_examples(obj: object) -> int:
    doc = inspect.getdoc(obj) or ""
    if "\nExamples\n--------\n" not in f"\n{doc}\n":
        return 0
    examples = doctest.DocTestParser().get_examples(doc)
    return sum(not ex.options.get(doctest.SKIP, False) for ex in examples)


def _public_api(module: ModuleType) -> list[str]:
    """Names in ``__all__`` that are functions or classes defined in the module itself."""
    names = []
    for attr in getattr(module, "__all__", []):
        obj = getattr(module, attr)
        is_api = inspect.isfunction(obj) or inspect.isclass(obj)
        if is_api and getattr(obj, "__module__", None) == module.__name__:
            names.append(attr)
    return names


@pytest.mark.parametrize("name", [pytest.param(name, id=name) for name in MODULES])
def test_public_api_has_examples(name: str) -> None:
    module = importlib.import_module(name)
    missing = {
        attr for attr in _public_api(module) if _runnable_examples(getattr(module, attr)) == 0
    }
    allowed = EXAMPLES_TO_WRITE.get(name, frozenset())
    assert sorted(missing - allowed) == [], "public names without a runnable Examples section"
    assert sorted(allowed - missing) == [], "these have examples now: remove them from the list"
