"""``contractive report``: the HTML page comparing runs (:mod:`contractive.report`)."""

from __future__ import annotations

import argparse

from ..report import format_table, write_report
from .argtypes import non_negative_int, positive_int
from .common import Command, add_data_options

__all__ = ["COMMANDS"]


def _add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``contractive report RUN [RUN ...] --out DIR`` to ``parser``."""
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run folders to compare")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for report.html")
    add_data_options(parser, whose="the first run's")
    parser.add_argument(
        "--n-points",
        type=positive_int,
        default=500,
        metavar="N",
        help="data points the metrics are averaged over (default: 500)",
    )
    parser.add_argument(
        "--spectrum-points",
        type=positive_int,
        default=200,
        metavar="N",
        help="of those, the points the Jacobian spectrum is averaged over (default: 200)",
    )
    parser.add_argument(
        "--seed",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="seed of the points, directions and sampling noise (default: 0)",
    )


def _report(args: argparse.Namespace) -> int:
    """``contractive report``: write the report, print the metrics table; returns 0."""
    report = write_report(
        args.runs,
        args.out,
        data=args.data,
        data_dir=args.data_dir,
        split=args.split,
        n_points=args.n_points,
        spectrum_points=args.spectrum_points,
        seed=args.seed,
    )
    print(format_table(report))
    print(f"Wrote {report.path}")
    return 0


COMMANDS: dict[str, Command] = {
    "report": Command(
        "HTML report comparing runs: contraction, spectra, ...", _add_report_arguments, _report
    ),
}
"""The command of this module."""
