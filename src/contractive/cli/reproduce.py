"""``contractive reproduce``: argparse over :mod:`contractive.experiments`.

The flags that change the protocol (``--train-size`` ... ``--final-input-dropout``) come
from the metadata of :class:`~contractive.experiments.Protocol`'s fields, as ``contractive
train``'s flags come from :class:`~contractive.config.Config`.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..data import DATASETS, parse_label_column
from ..exceptions import ConfigError
from ..experiments import (
    EXPERIMENTS,
    FULL,
    MODELS,
    QUICK,
    SELECTION_RULES,
    Protocol,
    run_table1,
    table2,
)
from ..experiments.table2_runner import run_table2
from ..train import resolve_device
from ..validation import check_int
from .argtypes import non_negative_int, positive_float, positive_int, probability
from .common import Command

__all__ = ["COMMANDS", "add_reproduce_arguments", "cmd_reproduce"]


# Every model either experiment knows; each experiment checks its own after parsing.
_ALL_MODELS = (*MODELS, *(m for m in table2.MODELS if m not in MODELS))


def _model_list(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in _ALL_MODELS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated subset of {','.join(MODELS)} (table1) or of "
            f"{','.join(table2.MODELS)} (table2), got {text!r}"
        )
    return names


def _dataset_list(text: str) -> list[str]:
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in DATASETS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of {','.join(DATASETS)}, got {text!r}"
        )
    return names


def _flag_settings() -> list[dataclasses.Field[Any]]:
    """The Protocol settings that a flag changes (``--train-size`` ... ``--final-lr``)."""
    return [f for f in Protocol.settings() if f.metadata["flag"]]


def _flag_help(name: str) -> str:
    full, quick = getattr(FULL, name), getattr(QUICK, name)
    field_help = next(f.metadata["flag"] for f in _flag_settings() if f.name == name)
    if full == quick:
        return f"{field_help} (default {_number(full)})"
    return f"{field_help} (default: full {_number(full)}, quick {_number(quick)})"


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


_CONVERTERS: dict[str, Callable[[str], Any]] = {
    "positive_int": positive_int,
    "non_negative_int": non_negative_int,
    "positive_float": positive_float,
    "probability": probability,
}


def add_reproduce_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``contractive reproduce`` to its subcommand parser.

    Examples
    --------
    >>> p = argparse.ArgumentParser()
    >>> add_reproduce_arguments(p)
    >>> args = p.parse_args(["table1", "--out", "results", "--quick"])
    >>> args.experiment, args.quick, args.models
    ('table1', True, None)
    """
    parser.description = (
        "Reproduce Table 1 of Rifai et al. (2011) on MNIST (or run its protocol on another "
        "dataset with --data): pre-train CAE, DAE-g, DAE-b, AE+wd and AE, fine-tune each as an "
        "MLP, select by validation error, report test error."
    )
    parser.add_argument("experiment", choices=EXPERIMENTS, help="which experiment")
    parser.add_argument(
        "--data",
        default="mnist",
        metavar="SRC",
        help=f"the dataset: one of {', '.join(DATASETS)}, or a labelled .npz/.csv file "
        "(default: mnist, the paper's)",
    )
    parser.add_argument(
        "--datasets",
        type=_dataset_list,
        metavar="D[,D...]",
        help=f"table2: the datasets (default: the paper's {','.join(table2.DATASETS)}; with "
        f"--quick {','.join(table2.QUICK_DATASETS)})",
    )
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="folder holding the dataset's files (MNIST: the four .gz; the variations: their "
        ".amat files, else MNIST's to regenerate them)",
    )
    parser.add_argument(
        "--label-column",
        metavar="NAME|INDEX",
        help="the label column (.csv) or array (.npz) of a user file",
    )
    parser.add_argument("--out", required=True, metavar="OUT", help="folder for the results")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="under 10 minutes on 2 CPU cores: fewer epochs, one grid point per model",
    )
    parser.add_argument(
        "--models",
        type=_model_list,
        metavar="M[,M...]",
        help=f"only these models (default: all; table1: {','.join(MODELS)}; table2: "
        f"{','.join(table2.MODELS)})",
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--seed", type=int, default=0, help="seed of every run (default 0)")
    parser.add_argument(
        "--threads",
        type=positive_int,
        metavar="N",
        help="torch intra-op threads (default: torch's choice; 1 is faster on a busy machine)",
    )
    parser.add_argument(
        "--selection",
        choices=SELECTION_RULES,
        help="how each model's grid point is chosen from the validation errors: min, or "
        "one-se, the most regularised point within one standard error of the lowest "
        "(default: one-se)",
    )
    parser.add_argument(
        "--jobs",
        type=positive_int,
        metavar="N",
        help="models trained at once, one process each, sharing the torch threads (default: "
        "one per thread on the CPU, so 2 on 2 cores and 1 with --threads 1; 1 on a GPU); "
        "the results do not depend on it",
    )
    changes = parser.add_argument_group(
        "changing the protocol (the result is then not the paper's protocol)"
    )
    for setting in _flag_settings():
        changes.add_argument(
            "--" + setting.name.replace("_", "-"),
            type=_CONVERTERS[setting.metadata["kind"]],
            metavar=setting.metadata["metavar"],
            help=_flag_help(setting.name),
        )


def _protocol_from_args(args: argparse.Namespace) -> Protocol:
    if args.experiment == "table2":
        protocol = table2.QUICK if args.quick else table2.FULL
    else:
        protocol = QUICK if args.quick else FULL
    changes: dict[str, Any] = {}
    for setting in _flag_settings():
        value = getattr(args, setting.name, None)
        if value is not None and value != getattr(protocol, setting.name):
            changes[setting.name] = value
    if args.seed != protocol.seed:
        changes["seed"] = check_int("seed", args.seed, low=0)
    if args.selection and args.selection != protocol.selection:
        changes["selection"] = args.selection
    if args.models and args.experiment == "table1":
        wrong = [m for m in args.models if m not in MODELS]
        if wrong:
            raise ConfigError(
                f"--models for table1 must be some of {','.join(MODELS)}. Got "
                f"{','.join(wrong)} instead."
            )
        changes["grids"] = {m: g for m, g in protocol.grids.items() if m in args.models}
    if not changes:
        return protocol
    return dataclasses.replace(protocol, name=f"{protocol.name} (changed)", **changes)


def _run_mtc(args: argparse.Namespace, command: str) -> None:
    from ..experiments import mtc
    from ..experiments.mtc_runner import run_mtc

    table_only = [
        "--" + f.name.replace("_", "-")
        for f in _flag_settings()
        if getattr(args, f.name, None) is not None
    ]
    table_only += [flag for flag, given in _TABLE_ONLY.items() if getattr(args, given)]
    if args.label_column is not None:
        table_only.append("--label-column")
    if table_only:
        raise ConfigError(
            f"{', '.join(table_only)} apply to table1/table2; mtc takes --data, --data-dir, "
            "--out, --quick, --device, --seed and --threads"
        )
    protocol = mtc.QUICK if args.quick else mtc.FULL
    if args.seed != protocol.seed:
        seed = check_int("seed", args.seed, low=0)
        protocol = dataclasses.replace(protocol, name=f"{protocol.name} (seed {seed})", seed=seed)
    run_mtc(
        args.out,
        protocol=protocol,
        dataset=args.data,
        data_dir=args.data_dir,
        device=resolve_device(args.device),
        command=command,
        log=_stderr,
    )


# Flags of the Table experiments that mtc refuses, by their argparse destination.
_TABLE_ONLY = {
    "--datasets": "datasets",
    "--models": "models",
    "--selection": "selection",
    "--jobs": "jobs",
}


def cmd_reproduce(args: argparse.Namespace) -> int:
    """Run ``contractive reproduce EXPERIMENT`` from parsed arguments; returns the exit status.

    Progress goes to stderr; the finished table (``OUT/table1.md``, ``table2.md`` or
    ``mtc.md``) is printed to stdout.
    """
    if args.threads:
        torch.set_num_threads(args.threads)
    command = " ".join(["contractive reproduce", args.experiment, *_rebuild_flags(args)])
    if args.experiment == "mtc":
        _run_mtc(args, command)
        print((Path(args.out) / "mtc.md").read_text(), end="")
        print(f"Wrote {Path(args.out) / 'mtc.md'} and {Path(args.out) / 'mtc.json'}")
        return 0
    protocol = _protocol_from_args(args)
    if args.experiment == "table2":
        if args.data != "mnist" or args.label_column is not None:
            raise ConfigError("table2 takes --datasets, not --data or --label-column")
        run_table2(
            args.out,
            datasets=args.datasets or (table2.QUICK_DATASETS if args.quick else table2.DATASETS),
            models=args.models or table2.MODELS,
            data_dir=args.data_dir,
            protocol=protocol,
            svm_grid=table2.QUICK_SVM_GRID if args.quick else table2.SVM_GRID,
            device=args.device,
            jobs=args.jobs,
            command=command,
            log=_stderr,
        )
        name = "table2"
    else:
        if args.datasets:
            raise ConfigError("--datasets is for table2; table1 takes one dataset, --data")
        _run_table1(args, protocol, command)
        name = "table1"
    print((Path(args.out) / f"{name}.md").read_text(), end="")
    print(f"Wrote {Path(args.out) / f'{name}.md'} and {Path(args.out) / f'{name}.json'}")
    return 0


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _run_table1(args: argparse.Namespace, protocol: Protocol, command: str) -> None:
    run_table1(
        args.out,
        dataset=args.data,
        data_dir=args.data_dir,
        label_column=parse_label_column(args.label_column),
        protocol=protocol,
        device=args.device,
        jobs=args.jobs,
        command=command,
    )


def _rebuild_flags(args: argparse.Namespace) -> list[str]:
    """The flags of ``args`` as a command line, for the record in the outputs."""
    flags: list[str] = []
    if args.datasets:
        flags += ["--datasets", ",".join(args.datasets)]
    if args.data != "mnist":
        flags += ["--data", shlex.quote(str(args.data))]
    if args.label_column is not None:
        flags += ["--label-column", shlex.quote(str(args.label_column))]
    if args.data_dir:
        flags += ["--data-dir", shlex.quote(str(args.data_dir))]
    flags += ["--out", shlex.quote(str(args.out))]
    if args.quick:
        flags.append("--quick")
    if args.models:
        flags += ["--models", ",".join(args.models)]
    if args.device != "auto":
        flags += ["--device", args.device]
    if args.seed:
        flags += ["--seed", str(args.seed)]
    if args.threads:
        flags += ["--threads", str(args.threads)]
    if args.selection:
        flags += ["--selection", args.selection]
    if args.jobs:
        flags += ["--jobs", str(args.jobs)]
    for setting in _flag_settings():
        value = getattr(args, setting.name, None)
        if value is not None:
            flags += ["--" + setting.name.replace("_", "-"), _number(value)]
    return flags


COMMANDS: dict[str, Command] = {
    "reproduce": Command(
        "reproduce Table 1 of Rifai et al. (2011) on MNIST or any dataset",
        add_reproduce_arguments,
        cmd_reproduce,
    ),
}
