"""What the sub-commands share: the parser, the data options, a run and its data, errors.

Each module of the package lists its commands in a ``COMMANDS`` dict (name to
:class:`Command`), which ``contractive.cli`` puts together. The data options (``--data``,
``--data-dir``, ``--split`` and ``--label-column``) are defined here once for every command
that uses a trained run on data, and :func:`load_run_and_data` loads what they name through
:func:`contractive.workflow.load_run_data`, the loader the report also uses.
:func:`report_error` turns any exception into the command's one line on stderr and its exit
status.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple, NoReturn

from ..data import DATASETS, SPLITS
from ..exceptions import ConfigError, ContractiveError, TrainingDivergedError
from .argtypes import non_negative_int, positive_int

if TYPE_CHECKING:
    from ..data import Dataset
    from ..runs import Run

__all__ = [
    "Command",
    "Parser",
    "UsageError",
    "add_data_options",
    "add_int_option",
    "load_run_and_data",
    "report_error",
]


class UsageError(ContractiveError, ValueError):
    """A command-line usage error (exit status 2).

    Examples
    --------
    >>> err = UsageError("train needs --out RUN (a folder for the new run) or --resume RUN")
    >>> isinstance(err, ValueError), isinstance(err, ContractiveError)
    (True, True)
    """


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block) raised as :class:`UsageError`.

    Examples
    --------
    >>> parser = Parser(prog="contractive demo")
    >>> _ = parser.add_argument("--epochs", type=int)
    >>> parser.parse_args(["--epochs", "many"])
    Traceback (most recent call last):
        ...
    contractive.cli.common.UsageError: argument --epochs: invalid int value: 'many' (see ...)
    """

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


class Command(NamedTuple):
    """One sub-command: its line in ``contractive --help``, its options, what it does.

    Attributes
    ----------
    help : str
        The one-line description.
    add_arguments : callable
        ``add_arguments(parser)`` adds the command's options to its own parser.
    run : callable
        ``run(args)`` does the work and returns the exit status (0); errors are raised, for
        ``contractive.cli.main`` to report.

    Examples
    --------
    >>> def add(parser):
    ...     _ = parser.add_argument("--times", type=int, default=1)
    >>> def run(args):
    ...     print("hello " * args.times)
    ...     return 0
    >>> hello = Command("say hello", add, run)
    >>> parser = argparse.ArgumentParser()
    >>> hello.add_arguments(parser)
    >>> hello.run(parser.parse_args(["--times", "2"]))
    hello hello
    0
    """

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def add_data_options(
    parser: argparse.ArgumentParser, *, whose: str = "the run's", label_column: bool = False
) -> None:
    """Add ``--data``, ``--data-dir``, [``--label-column``,] ``--split`` to ``parser``.

    Unset, ``data``, ``data_dir`` and ``label_column`` are ``None`` (the run's own, as
    :func:`contractive.workflow.load_run_data` reads them) and ``split`` is ``"test"``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The parser of one sub-command.
    whose : str
        Whose data ``--data`` defaults to, for its help text.
    label_column : bool
        Also add ``--label-column``.

    Examples
    --------
    >>> parser = argparse.ArgumentParser()
    >>> add_data_options(parser, label_column=True)
    >>> args = parser.parse_args(["--data", "table.csv", "--label-column", "0"])
    >>> args.data, args.data_dir, args.label_column, args.split
    ('table.csv', None, '0', 'test')
    """
    parser.add_argument(
        "--data",
        metavar="SRC",
        default=None,
        help=f"a dataset name ({', '.join(DATASETS)}) or a .npy/.npz/.csv path (default: "
        f"{whose} data)",
    )
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        default=None,
        help="folder holding the dataset files (default: the run's)",
    )
    if label_column:
        parser.add_argument(
            "--label-column",
            metavar="NAME|INDEX",
            default=None,
            help="CSV/NPZ label column, by name or index (default: the run's, on its own data)",
        )
    parser.add_argument(
        "--split",
        choices=SPLITS,
        default="test",
        help="which split of a built-in dataset (default: test; valid: the MNIST variations' "
        "own validation set); files are used whole",
    )


def add_int_option(
    parser: argparse.ArgumentParser,
    flag: str,
    default: int,
    help: str,
    *,
    allow_zero: bool = False,
) -> None:
    """Add ``flag N``: an integer >= 1 (>= 0 with ``allow_zero``), its default ending its help.

    Examples
    --------
    >>> parser = argparse.ArgumentParser()
    >>> add_int_option(parser, "--seed", 0, "seed of the noise", allow_zero=True)
    >>> parser.parse_args(["--seed", "3"]).seed, parser.parse_args([]).seed
    (3, 0)
    >>> "seed of the noise (default: 0)" in parser.format_help()
    True
    """
    parser.add_argument(
        flag,
        type=non_negative_int if allow_zero else positive_int,
        default=default,
        metavar="N",
        help=f"{help} (default: {default})",
    )


def load_run_and_data(args: argparse.Namespace) -> tuple[Run, Dataset]:
    """The run folder ``args.run`` and the data the options of :func:`add_data_options` name.

    Examples
    --------
    >>> from contractive.config import Config
    >>> from contractive.workflow import train_run
    >>> _ = train_run(Config(hidden=[4], epochs=1), "cae", quiet=True, plots=False)
    >>> parser = argparse.ArgumentParser()
    >>> _ = parser.add_argument("run")
    >>> add_data_options(parser)
    >>> run, ds = load_run_and_data(parser.parse_args(["cae", "--split", "all"]))
    >>> run.path.name, ds.name, ds.X.shape
    ('cae', 'digits', (1797, 64))
    """
    from ..runs import load_run
    from ..workflow import load_run_data

    run = load_run(args.run)
    ds = load_run_data(
        run,
        args.data,
        data_dir=args.data_dir,
        split=args.split,
        label_column=getattr(args, "label_column", None),
    )
    return run, ds


def report_error(exc: Exception) -> int:
    """Print ``exc`` as one line on stderr; return 2 for a usage error, 1 for any other.

    Examples
    --------
    >>> import contextlib, io
    >>> with contextlib.redirect_stderr(io.StringIO()) as err:
    ...     status = report_error(UsageError("--out x.txt: expected a .npy, .npz or .csv file"))
    >>> status, err.getvalue()
    (2, 'contractive: error: --out x.txt: expected a .npy, .npz or .csv file\\n')
    >>> with contextlib.redirect_stderr(io.StringIO()) as err:
    ...     status = report_error(KeyError("x"))
    >>> status, err.getvalue()
    (1, "contractive: error: unexpected KeyError: 'x' (run with --debug for details)\\n")
    """
    usage = isinstance(exc, UsageError | ConfigError)
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, TrainingDivergedError):
        message += " The last good checkpoint in the run folder is kept."
    elif not isinstance(exc, ContractiveError | OSError):
        message = f"unexpected {type(exc).__name__}: {message} (run with --debug for details)"
    print(f"contractive: error: {message}", file=sys.stderr)
    return 2 if usage else 1
