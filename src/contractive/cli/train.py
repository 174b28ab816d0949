"""``contractive info``, ``train``, ``encode`` and ``reconstruct``: make a run and use it.

Every ``train`` option is generated from a field of :class:`~contractive.config.Config` (its
type, default, choices and help), so an option is defined in one place. A TOML file
(``--config``) sets the same keys and the command line overrides it.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Config, load_toml
from ..data import Dataset
from ..runs import CHECKPOINT_FILE, Run, atomic_write_bytes, load_run, read_metrics
from .common import Command, UsageError, add_data_options, load_run_and_data

__all__ = ["COMMANDS"]


# ---------------------------------------------------------------------------------------------
# info


def _add_info_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``contractive info RUN [--json]`` to ``parser``."""
    parser.add_argument("run", metavar="RUN", help="run folder")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _info(args: argparse.Namespace) -> int:
    """``contractive info``: describe a run folder, as text or as JSON; returns 0."""
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
        "stack": _stack_info(run, metrics),
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
        + (f", {_stack_name(cfg)}" if cfg.greedy else "")
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
    if data.get("provenance"):
        print(f"             {data['provenance']}")
    stack = info["stack"]
    if stack is None:
        print(f"epochs       {len(metrics)}/{cfg.epochs}")
    else:
        done = ", ".join(
            f"layer {k}: {n}/{cfg.epochs}" for k, n in enumerate(stack["epochs_done"], start=1)
        )
        print(f"epochs       {done}")
        if stack.get("recon") is not None:
            print(f"stack        recon {stack['recon']:.4f} on the {stack['split']} split")
    if metrics:
        last = metrics[-1]
        where = f"layer {last['layer']}/{len(cfg.hidden)}, " if "layer" in last else ""
        line = f"last epoch   {where}recon {last['recon']:.4f}"
        if last.get("penalty") is not None:
            line += f", penalty {last['penalty']:.4g}"
        if last.get("val_total") is not None:
            line += f", validation {last['val_total']:.4f}"
        print(line)
    return 0


def _stack_name(config: Config) -> str:
    """``greedy stack of 2 layers``: how ``info`` names a greedy run's model."""
    n = len(config.hidden)
    return f"greedy stack of {n} layer{'s' if n > 1 else ''}"


def _stack_info(run: Run, metrics: list[dict[str, Any]]) -> dict[str, Any] | None:
    """What ``info`` tells of a greedy stack: its layers, epochs per layer, final recon."""
    if not run.config.greedy:
        return None
    from ..workflow import layer_epochs

    n = len(run.config.hidden)
    recorded = run.meta.get("stack") or {}
    return {
        "layers": n,
        "epochs_done": layer_epochs(metrics, n),
        "recon": recorded.get("recon"),
        "split": recorded.get("split"),
    }


# ---------------------------------------------------------------------------------------------
# train

# Options that may be given with --resume: they do not change what is being trained.
_RESUMABLE = ("epochs", "data_dir")


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


def _add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``contractive train`` to ``parser``: one flag a Config field."""
    where = parser.add_argument_group("run folder")
    where.add_argument("--out", metavar="RUN", help="run folder to create")
    where.add_argument("--resume", metavar="RUN", help="continue the run in RUN")
    where.add_argument("--config", metavar="FILE.toml", help="read options from a TOML file")
    where.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    where.add_argument("--quiet", action="store_true", help="no progress bar or epoch lines")
    where.add_argument(
        "--mmap", action="store_true", help="memory-map a .npy dataset instead of loading it"
    )
    where.add_argument("--no-plots", action="store_true", help="skip filters/reconstructions PNGs")
    options = parser.add_argument_group("training options (also settable in --config)")
    for f in dataclasses.fields(Config):
        _add_config_option(options, f)


def _config_values(args: argparse.Namespace) -> dict[str, Any]:
    return {
        f.name: getattr(args, f.name) for f in dataclasses.fields(Config) if hasattr(args, f.name)
    }


def _train(args: argparse.Namespace) -> int:
    """``contractive train``: train a new run (or resume one); print its folder and loss."""
    from ..workflow import resume_run, train_run

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
    print(f"Run folder: {run.path}")
    if run.config.greedy:
        stack = run.meta["stack"]
        print(
            f"  {_stack_name(run.config)}: final recon {stack['recon']:.4f} "
            f"on the {stack['split']} split"
        )
        return 0
    last = json.loads((run.path / "metrics.jsonl").read_text().splitlines()[-1])
    summary = f"  final recon {last['recon']:.4f}"
    if last.get("val_total") is not None:
        summary += f", validation objective {last['val_total']:.4f}"
    print(summary)
    return 0


# ---------------------------------------------------------------------------------------------
# encode and reconstruct


def _add_encode_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``contractive encode RUN --out FILE`` to ``parser``."""
    parser.add_argument("run", metavar="RUN", help="run folder")
    add_data_options(parser, label_column=True)
    parser.add_argument("--out", required=True, metavar="FILE", help="output .npy, .npz or .csv")


def _add_reconstruct_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``contractive reconstruct RUN --out FILE [--png FILE]`` to ``parser``.

    Those of :func:`_add_encode_arguments`, and ``--png``.
    """
    _add_encode_arguments(parser)
    parser.add_argument("--png", metavar="FILE", help="also draw inputs above reconstructions")


def _write_array(
    args: argparse.Namespace, what: str, transform: Callable[[Run, np.ndarray], np.ndarray]
) -> tuple[Run, Dataset, np.ndarray]:
    """Load RUN and its data, write ``transform(run, X)`` (and the labels) to --out, say so."""
    out = Path(args.out)
    suffix = out.suffix.lower()
    if suffix not in (".npy", ".npz", ".csv"):
        raise UsageError(f"--out {out}: expected a .npy, .npz or .csv file name")
    run, ds = load_run_and_data(args)
    values = transform(run, ds.X)
    buffer = io.BytesIO()
    if suffix == ".npy":
        np.save(buffer, values)
    elif suffix == ".csv":
        np.savetxt(buffer, values, delimiter=",", fmt="%.7g")
    elif ds.y is None:
        np.savez(buffer, X=values)
    else:
        np.savez(buffer, X=values, y=ds.y)
    atomic_write_bytes(out, buffer.getvalue())
    print(f"Wrote {what} {values.shape[0]} x {values.shape[1]} to {out}")
    return run, ds, values


def _encode(args: argparse.Namespace) -> int:
    """``contractive encode``: write the codes of a dataset (and its labels, to a .npz)."""
    _write_array(args, "codes", Run.encode)
    return 0


def _reconstruct(args: argparse.Namespace) -> int:
    """``contractive reconstruct``: write the reconstructions of a dataset, and a figure."""
    run, ds, recon = _write_array(args, "reconstructions", Run.reconstruct)
    if args.png:
        shape = run.meta.get("image_shape")
        if not shape:
            raise UsageError("--png needs image data; this run was trained on tabular data")
        from ..plots import plot_reconstructions

        plot_reconstructions(run.prepare(ds.X[:10]).numpy(), recon[:10], tuple(shape), args.png)
        print(f"Wrote {args.png}")
    return 0


COMMANDS: dict[str, Command] = {
    "train": Command("train a model into a run folder", _add_train_arguments, _train),
    "encode": Command("write the codes of a dataset", _add_encode_arguments, _encode),
    "reconstruct": Command(
        "write the reconstructions of a dataset", _add_reconstruct_arguments, _reconstruct
    ),
    "info": Command("describe a run folder", _add_info_arguments, _info),
}
"""The commands of this module, in the order ``contractive --help`` lists them."""
