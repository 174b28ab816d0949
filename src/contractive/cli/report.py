"""``contractive report``: the HTML page comparing runs (:mod:`contractive.report`)."""

from __future__ import annotations

import argparse

from ..report import format_table, write_report
from .common import Command, add_data_options, add_int_option

__all__ = ["COMMANDS"]


def _add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``contractive report RUN [RUN ...] --out DIR`` to ``parser``."""
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run folders to compare")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for report.html")
    add_data_options(parser, whose="the first run's")
    add_int_option(parser, "--n-points", 500, "data points the metrics are averaged over")
    add_int_option(
        parser,
        "--spectrum-points",
        200,
        "of those, the points the Jacobian spectrum is averaged over",
    )
    add_int_option(
        parser, "--seed", 0, "seed of the points, directions and sampling noise", allow_zero=True
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
