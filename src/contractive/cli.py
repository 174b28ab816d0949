"""The ``contractive`` command: a thin layer over :class:`~contractive.config.Config`.

Every ``train`` option is generated from a field of :class:`Config` (its type, default, choices
and help), so an option is defined in one place. A TOML file (``--config``) sets the same keys
and the command line overrides it.

Exit status: 0 success; 1 a runtime failure (bad data file, diverged training, damaged run
folder); 2 a usage error (bad option, config or value); 130 interrupted (Ctrl-C). Errors are
one line on stderr; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from . import __version__
from .config import Config, load_toml
from .exceptions import ConfigError, ContractiveError

__all__ = ["main"]

# Options that may be given with --resume: they do not change what is being trained.
_RESUMABLE = ("epochs", "data_dir")


class UsageError(ContractiveError, ValueError):
    """A command-line usage error (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block) raised as UsageError."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 500,100, got {text!r}"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


def _add_config_option(parser: argparse._ActionsContainer, f: dataclasses.Field[Any]) -> None:
    """Add the flag for one Config field; SUPPRESS keeps unset flags out of the namespace."""
    hint = typing.get_type_hints(Config)[f.name]
    help_text = f.metadata.get("help", "")
    choices = f.metadata.get("choices")
    default = getattr(Config(), f.name)
    shown = ",".join(map(str, default)) if isinstance(default, list) else default
    kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS}
    if hint is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
        kwargs["help"] = f"{help_text} (default: {'on' if default else 'off'})"
    else:
        base = {int: int, float: float, str: str}.get(hint, str)
        if typing.get_origin(hint) is list:
            kwargs["type"] = _int_list
            kwargs["metavar"] = "N[,N...]"
        else:
            kwargs["type"] = base
            kwargs["metavar"] = f.name.upper() if not choices else None
        if choices:
            kwargs["choices"] = choices
        kwargs["help"] = f"{help_text} (default: {shown})"
    parser.add_argument(_flag(f.name), **kwargs)


def _config_field(name: str) -> dataclasses.Field[Any]:
    return next(f for f in dataclasses.fields(Config) if f.name == name)


def _build_parser() -> _Parser:
    parser = _Parser(
        prog="contractive",
        description="Train, inspect and use contractive autoencoders.",
    )
    parser.add_argument("--version", action="version", version=f"contractive {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    train = sub.add_parser("train", help="train a model into a run folder")
    where = train.add_argument_group("run folder")
    where.add_argument("--out", metavar="RUN", help="run folder to create")
    where.add_argument("--resume", metavar="RUN", help="continue the run in RUN")
    where.add_argument("--config", metavar="FILE.toml", help="read options from a TOML file")
    where.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    where.add_argument("--quiet", action="store_true", help="no progress bar or epoch lines")
    where.add_argument(
        "--mmap", action="store_true", help="memory-map a .npy dataset instead of loading it"
    )
    where.add_argument("--no-plots", action="store_true", help="skip filters/reconstructions PNGs")
    options = train.add_argument_group("training options (also settable in --config)")
    for f in dataclasses.fields(Config):
        _add_config_option(options, f)

    for name, what in (("encode", "codes"), ("reconstruct", "reconstructions")):
        p = sub.add_parser(name, help=f"write the {what} of a dataset")
        p.add_argument("run", metavar="RUN", help="run folder")
        for field_name in ("data", "data_dir", "label_column"):
            _add_config_option(p, _config_field(field_name))
        p.add_argument(
            "--split",
            choices=("train", "test", "all"),
            default="test",
            help="which split of a built-in dataset (default: test)",
        )
        p.add_argument("--out", required=True, metavar="FILE", help="output .npy, .npz or .csv")
        if name == "reconstruct":
            p.add_argument("--png", metavar="FILE", help="also draw inputs above reconstructions")

    info = sub.add_parser("info", help="describe a run folder")
    info.add_argument("run", metavar="RUN", help="run folder")
    info.add_argument("--json", action="store_true", help="machine-readable output")

    # The analysis commands define their own options next to the code they drive.
    from .analysis import add_sample_arguments
    from .report import add_report_arguments
    from .reproduce import add_reproduce_arguments

    add_sample_arguments(sub.add_parser("sample", help="sample along the learned manifold"))
    add_report_arguments(
        sub.add_parser("report", help="HTML report comparing runs: contraction, spectra, ...")
    )
    add_reproduce_arguments(
        sub.add_parser("reproduce", help="reproduce Table 1 of Rifai et al. (2011) on MNIST")
    )
    return parser


def _cmd_sample(args: argparse.Namespace) -> int:
    from .analysis import cmd_sample

    return cmd_sample(args)


def _cmd_report(args: argparse.Namespace) -> int:
    from .report import cmd_report

    return cmd_report(args)


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from .reproduce import cmd_reproduce

    return cmd_reproduce(args)


def _config_values(args: argparse.Namespace) -> dict[str, Any]:
    return {
        f.name: getattr(args, f.name) for f in dataclasses.fields(Config) if hasattr(args, f.name)
    }


def _cmd_train(args: argparse.Namespace) -> int:
    from .workflow import resume_run, train_run

    given = _config_values(args)
    if args.resume:
        if args.out or args.config or args.overwrite:
            raise UsageError(
                "--resume RUN continues RUN: it takes no --out, --config or --overwrite"
            )
        fixed = sorted(set(given) - set(_RESUMABLE))
        if fixed:
            raise UsageError(
                f"--resume continues {args.resume} with its own config; only "
                f"{', '.join(map(_flag, _RESUMABLE))} may be given (got "
                f"{', '.join(map(_flag, fixed))})"
            )
        run = resume_run(
            args.resume,
            epochs=given.get("epochs"),
            data_dir=given.get("data_dir"),
            quiet=args.quiet,
            plots=not args.no_plots,
        )
    else:
        if not args.out:
            raise UsageError("train needs --out RUN (a folder for the new run) or --resume RUN")
        values = load_toml(args.config) if args.config else {}
        values.update(given)
        config = Config.from_dict(values, source=args.config or "the command line")
        run = train_run(
            config,
            args.out,
            overwrite=args.overwrite,
            quiet=args.quiet,
            plots=not args.no_plots,
            mmap=args.mmap,
        )
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun, process 0 speaks for all
    last = json.loads((run.path / "metrics.jsonl").read_text().splitlines()[-1])
    print(f"Run folder: {run.path}")
    summary = f"  final recon {last['recon']:.4f}"
    if last.get("val_total") is not None:
        summary += f", validation objective {last['val_total']:.4f}"
    print(summary)
    return 0


def _load_for_run(args: argparse.Namespace) -> tuple[Any, Any]:
    from .data import load_dataset
    from .runs import load_run

    run = load_run(args.run)
    source = getattr(args, "data", run.config.data)
    data_dir = getattr(args, "data_dir", run.config.data_dir)
    label = getattr(args, "label_column", None)
    # Min-max scaling is replayed from the run (fitted on its training data), not refitted.
    scale = "none" if run.config.scale == "minmax" else run.config.scale
    split = args.split if source in ("digits", "mnist", "fashion-mnist") else "all"
    label_arg: str | int | None = int(label) if label and label.lstrip("-").isdigit() else label
    ds = load_dataset(source, split=split, data_dir=data_dir, scale=scale, label_column=label_arg)
    return run, ds


def _save_array(path: Path, X: np.ndarray, y: np.ndarray | None) -> None:
    from .runs import atomic_write_bytes

    buffer = io.BytesIO()
    suffix = path.suffix.lower()
    if suffix == ".npy":
        np.save(buffer, X)
    elif suffix == ".npz":
        if y is None:
            np.savez(buffer, X=X)
        else:
            np.savez(buffer, X=X, y=y)
    elif suffix == ".csv":
        np.savetxt(buffer, X, delimiter=",", fmt="%.7g")
    else:
        raise UsageError(f"--out {path}: expected a .npy, .npz or .csv file name")
    atomic_write_bytes(path, buffer.getvalue())


def _cmd_encode(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix.lower() not in (".npy", ".npz", ".csv"):
        raise UsageError(f"--out {out}: expected a .npy, .npz or .csv file name")
    run, ds = _load_for_run(args)
    codes = run.encode(ds.X)
    _save_array(out, codes, ds.y)
    print(f"Wrote codes {codes.shape[0]} x {codes.shape[1]} to {out}")
    return 0


def _cmd_reconstruct(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix.lower() not in (".npy", ".npz", ".csv"):
        raise UsageError(f"--out {out}: expected a .npy, .npz or .csv file name")
    run, ds = _load_for_run(args)
    recon = run.reconstruct(ds.X)
    _save_array(out, recon, ds.y)
    print(f"Wrote reconstructions {recon.shape[0]} x {recon.shape[1]} to {out}")
    if args.png:
        shape = run.meta.get("image_shape")
        if not shape:
            raise UsageError("--png needs image data; this run was trained on tabular data")
        from .plots import plot_reconstructions

        plot_reconstructions(run.prepare(ds.X[:10]).numpy(), recon[:10], tuple(shape), args.png)
        print(f"Wrote {args.png}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from .runs import CHECKPOINT_FILE, load_run, read_metrics

    run = load_run(args.run)
    metrics = read_metrics(run.path / "metrics.jsonl")
    n_params = sum(p.numel() for p in run.model.parameters())
    info = {
        "run": str(run.path),
        "config": run.config.to_dict(),
        "n_features": run.n_features,
        "image_shape": run.meta.get("image_shape"),
        "data": run.meta.get("data"),
        "world_size": run.meta.get("world_size", 1),
        "parameters": n_params,
        "epochs_done": len(metrics),
        "last_epoch": metrics[-1] if metrics else None,
        "resumable": (run.path / CHECKPOINT_FILE).is_file(),
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    cfg = run.config
    print(f"run          {run.path}")
    print(
        f"model        {cfg.architecture} {run.n_features} -> "
        f"{' -> '.join(map(str, cfg.hidden))}, {cfg.activation}, "
        f"{'tied' if cfg.tied else 'untied'}, {n_params:,} parameters"
    )
    print(
        f"objective    {cfg.loss} + {cfg.contraction:g} * ||J||_F^2 ({cfg.penalty})"
        + (f" + {cfg.higher_order:g} * CAE+H" if cfg.higher_order else "")
        + (f" + {cfg.weight_decay:g} * ||W||^2" if cfg.weight_decay else "")
    )
    data = run.meta.get("data") or {}
    print(
        f"data         {data.get('source', cfg.data)}: {data.get('n_train', '?')} train, "
        f"{data.get('n_val', '?')} validation"
    )
    print(f"epochs       {len(metrics)}/{cfg.epochs}")
    if metrics:
        last = metrics[-1]
        line = f"last epoch   recon {last['recon']:.4f}"
        if last.get("penalty") is not None:
            line += f", penalty {last['penalty']:.4g}"
        if last.get("val_total") is not None:
            line += f", validation {last['val_total']:.4f}"
        print(line)
    return 0


_COMMANDS = {
    "train": _cmd_train,
    "encode": _cmd_encode,
    "reconstruct": _cmd_reconstruct,
    "info": _cmd_info,
    "sample": _cmd_sample,
    "report": _cmd_report,
    "reproduce": _cmd_reproduce,
}


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
    from .train import TrainingInterrupted

    try:
        args = _build_parser().parse_args(argv)
        return _COMMANDS[args.command](args)
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
        return _report(exc)


def _arg_after(argv: list[str], flag: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def _report(exc: Exception) -> int:
    """One line on stderr; 2 for usage errors, 1 for everything else."""
    from .exceptions import TrainingDivergedError

    usage = isinstance(exc, UsageError | ConfigError)
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, TrainingDivergedError):
        message += " The last good checkpoint in the run folder is kept."
    elif not isinstance(exc, ContractiveError | OSError):
        message = f"unexpected {type(exc).__name__}: {message} (run with --debug for details)"
    print(f"contractive: error: {message}", file=sys.stderr)
    return 2 if usage else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
