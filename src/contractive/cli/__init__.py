"""The ``contractive`` command: a thin layer over the library, one module a group of commands.

- :mod:`.common`: :class:`~.common.Command`, the parser, the data options (``--data``,
  ``--data-dir``, ``--split``, ``--label-column``), loading a run and its data, and the
  one-line error report.
- :mod:`.train`: ``train``, ``encode``, ``reconstruct`` and ``info``.
- :mod:`.analysis`: ``sample``.
- :mod:`.datasets`: ``data``, describing a dataset (and drawing a grid of its images).
- :mod:`.report`: ``report``.
- :mod:`.reproduce`: ``reproduce`` (over :mod:`contractive.experiments`).
- :mod:`.argtypes`: the ``type=`` converters of the options.

Each module lists its commands in a ``COMMANDS`` dict; ``_COMMANDS`` below puts them together
in the order of ``contractive --help``.

Exit status: 0 success; 1 a runtime failure (bad data file, diverged training, damaged run
folder); 2 a usage error (bad option, config or value); 130 interrupted (Ctrl-C). Errors are
one line on stderr; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .. import __version__
from . import analysis, datasets, report, reproduce, train
from .common import Command, Parser, report_error

__all__ = ["main"]

_COMMANDS: dict[str, Command] = {
    **train.COMMANDS,
    **analysis.COMMANDS,
    **datasets.COMMANDS,
    **report.COMMANDS,
    **reproduce.COMMANDS,
}


def _build_parser() -> Parser:
    parser = Parser(
        prog="contractive",
        description="Train, inspect and use contractive autoencoders.",
    )
    parser.add_argument("--version", action="version", version=f"contractive {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for name, command in _COMMANDS.items():
        command.add_arguments(sub.add_parser(name, help=command.help))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``contractive`` command; returns the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after the command name (default: ``sys.argv[1:]``).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> run = str(Path(tempfile.mkdtemp()) / "cae")
    >>> main(["train", "--hidden", "8", "--epochs", "1", "--out", run, "--quiet", "--no-plots"])
    Run folder: .../cae
      final recon ..., validation objective ...
    0
    >>> main(["info", run])
    run          .../cae
    model        mlp 64 -> 8, sigmoid, tied, 584 parameters
    objective    bce + 0.1 * ||J||_F^2 (auto)
    data         digits: 1293 train, 144 validation
    epochs       1/1
    last epoch   recon ..., penalty ..., validation ...
    0

    Errors are one line on stderr (not shown here) and an exit status of 2 for usage errors,
    1 for the others:

    >>> main(["train", "--epochs", "0", "--out", run])
    2
    >>> main(["info", run + "-missing"])
    1
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    from ..train import TrainingInterrupted

    try:
        args = _build_parser().parse_args(argv)
        return _COMMANDS[args.command].run(args)
    except SystemExit as exc:  # --help and --version
        return int(exc.code or 0)
    except TrainingInterrupted as exc:
        run = _arg_after(argv, "--out") or _arg_after(argv, "--resume") or "RUN"
        print(
            f"contractive: {exc} A checkpoint was saved; continue with: "
            f"contractive train --resume {run}",
            file=sys.stderr,
        )
        return 130
    except KeyboardInterrupt:
        print("contractive: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            raise
        return report_error(exc)


def _arg_after(argv: list[str], flag: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None
