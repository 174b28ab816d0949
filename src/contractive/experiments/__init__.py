"""The paper's experiments: protocols declared as data, run by one runner.

``protocol``
    :class:`Protocol` (settings and grids), :class:`GridPoint`, the selection rule.
``table1``
    Table 1 of Rifai et al. (2011) declared: its models and their knobs, the grids of the
    full and quick protocols, the paper's figures, the cost model behind the planned time.
``runner``
    Pre-training each grid value once, fine-tuning each grid point, selection, the final
    fine-tuning, test error and linear probe: one row per model; :func:`run_table1`.
``pool``
    Several models at once in spawned processes.
``render``
    The markdown table beside the paper's, and the JSON outputs.
``mtc``, ``mtc_runner``
    The Manifold Tangent Classifier: a CAE+H stack, its tangents, fine-tuning with and
    without tangent propagation, semi-supervised rows; :func:`~.mtc_runner.run_mtc`.

Examples
--------
>>> from contractive.experiments import QUICK, planned_seconds
>>> QUICK.models
('CAE', 'DAE-g', 'DAE-b', 'AE+wd', 'AE')
>>> planned_seconds(QUICK, jobs=2) < 600
True
"""

from __future__ import annotations

from .protocol import (
    SELECTION_RULES,
    GridPoint,
    Protocol,
    check_protocol,
    grid,
    protocol_differences,
    select_point,
)
from .runner import run_table1
from .table1 import FULL, MODELS, PAPER_TABLE1, QUICK, PaperRow, differences, planned_seconds

__all__ = [
    "EXPERIMENTS",
    "FULL",
    "MODELS",
    "PAPER_TABLE1",
    "QUICK",
    "SELECTION_RULES",
    "GridPoint",
    "PaperRow",
    "Protocol",
    "check_protocol",
    "differences",
    "grid",
    "planned_seconds",
    "protocol_differences",
    "run_table1",
    "select_point",
]

#: Experiments ``contractive reproduce`` knows.
EXPERIMENTS = ("table1", "table2", "mtc")
