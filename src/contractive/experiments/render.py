"""Writing an experiment's results: the markdown table beside the paper's, and the JSON.

The three files of ``contractive reproduce table1`` (``table1.md``, ``table1.json``,
``table1_run.json``) are rewritten atomically after every model, so an interrupted run leaves
the finished rows readable.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..runs import atomic_write_bytes
from .protocol import GridPoint, Protocol
from .table1 import DEFINITIONS, KNOB_SYMBOLS, KNOBS, MODELS, RULE_TEXT, paper_rows, point_text

__all__ = ["fmt_time", "markdown", "ranking", "write_outputs"]


# How the paper writes the names of its datasets.
_TITLES = {"mnist": "MNIST", "cifar-bw": "CIFAR-bw", "fashion-mnist": "Fashion-MNIST"}


def fmt_time(seconds: float) -> str:
    """Seconds as a person reads them: ``"95 s"``, ``"12.5 min"``.

    Examples
    --------
    >>> fmt_time(95), fmt_time(750)
    ('95 s', '12.5 min')
    """
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _sci(x: float) -> str:
    return f"{x:.3g}" if 1e-2 <= abs(x) < 1e4 else f"{x:.2e}"


def ranking(errors: Mapping[str, float]) -> str:
    """``"CAE < AE = AE+wd"``: models by increasing error, ties shown as such.

    Examples
    --------
    >>> ranking({"AE": 1.9, "CAE": 1.2, "AE+wd": 1.9})
    'CAE < AE = AE+wd'
    """
    order = sorted(errors, key=lambda m: errors[m])
    text = order[0]
    for prev, model in itertools.pairwise(order):
        text += (" = " if errors[model] == errors[prev] else " < ") + model
    return text


def markdown(
    rows: Sequence[dict[str, Any]], meta: dict[str, Any], protocol: Protocol, done: bool
) -> str:
    """``table1.md``: the table beside the paper's, the definitions, the settings, the grid."""
    dataset = meta.get("dataset", "mnist")
    papers = paper_rows(dataset)
    against = "against Rifai et al. (2011)" if papers else "(the paper has no figures for it)"
    title = _TITLES.get(dataset, dataset)
    lines = [f"# Table 1 ({title}): contractive {against}", ""]
    if not done:
        lines += [
            f"**In progress**: {len(rows)} of {len(protocol.models)} models done.",
            "",
        ]
    lines += [
        f"- Protocol: **{protocol.name}**. Command: `{meta['command']}`",
        f"- Total wall time: {fmt_time(meta['total_seconds'])} "
        f"(planned {fmt_time(meta['planned_seconds'])} on 2 CPU cores); "
        f"torch {meta['environment']['torch']}, {meta['environment']['jobs']} job(s) of "
        f"{meta['environment']['threads_per_job']} thread(s), device "
        f"{meta['environment']['device']}.",
    ]
    if meta.get("provenance"):
        lines.append(f"- Data: {meta['provenance']}.")
    if meta["differences"]:
        lines.append(
            "- Shortened or changed from the full protocol: " + "; ".join(meta["differences"]) + "."
        )
    lines += [
        "",
        "| model | test error % | paper | val error % | selected | mean ‖J_f(x)‖_F | paper "
        "| SAT % | paper | probe test error % | wall time |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_model = {row["model"]: row for row in rows}
    # The paper's models (its RBM too) in its order, then ours that it lacks on this dataset.
    for model in [*papers, *(m for m in MODELS if m not in papers)]:
        row = by_model.get(model)
        paper = papers.get(model)
        ref = (
            ("", "", "")
            if paper is None
            else (f"{paper.test_error:.2f}", f"{paper.jacobian_norm:.2e}", f"{paper.sat:.2f}")
        )
        if row is None:
            why = "not reproduced" if model not in MODELS else "not run"
            lines.append(f"| {model} | {why} | {ref[0]} | | | | {ref[1]} | | {ref[2]} | | |")
            continue
        selected = ", ".join(
            f"{KNOB_SYMBOLS.get(k, k) if k != 'finetune_lr' else 'lr'}={v:g}"
            for k, v in row["selected"].items()
        )
        lines.append(
            f"| {model} | **{row['test_error']:.2f}** | {ref[0]} | {row['val_error']:.2f} | "
            f"{selected} | {_sci(row['mean_jacobian_norm'])} | {ref[1]} | {row['sat']:.2f} | "
            f"{ref[2]} | {row['probe_test_error']:.2f} | {fmt_time(row['wall_seconds'])} |"
        )
    if rows:
        ours = ranking({r["model"]: r["test_error"] for r in rows})
        line = f"Ranking by test error: ours {ours}"
        if papers:
            theirs = ranking({m: papers[m].test_error for m in by_model if m in papers})
            line += f"; the paper's (same models) {theirs}"
        lines += ["", line + "."]
    lines += ["", "## Definitions", ""]
    lines += [f"- **{key}**: {text}" for key, text in DEFINITIONS.items()]
    lines += [
        "",
        "## Settings",
        "",
        f"- Data: {meta['data']}.",
        f"- Pre-training: {meta['n_features']}-{protocol.hidden} sigmoid, tied weights, "
        f"cross-entropy, Adam lr {protocol.pretrain_lr:g}, batch "
        f"{protocol.pretrain_batch_size}, epochs {protocol.pretrain_epochs}, seed "
        f"{protocol.seed}.",
        f"- Fine-tuning: the encoder's weights and biases initialise the hidden layer, a new "
        f"zero-initialised softmax layer on top; SGD momentum 0.9, batch "
        f"{protocol.finetune_batch_size}, initial lr as selected, cosine decay over "
        f"{protocol.finetune_epochs} epochs, "
        f"patience {protocol.patience or 'off'}; the best-validation epoch's weights are kept.",
        f"- Selection: {RULE_TEXT[protocol.selection]}",
        (
            f"- Final fine-tuning of the selected point: from the pre-trained encoder again, "
            f"{protocol.final_epochs} epochs, SGD momentum 0.9, batch "
            f"{protocol.finetune_batch_size}, lr {protocol.final_lr:g} with cosine decay, dropout "
            f"{protocol.final_dropout:g} on the codes and {protocol.final_input_dropout:g} on the "
            "pixels, the best-validation epoch's weights kept; this classifier is tested."
            if protocol.final_epochs
            else "- Final fine-tuning: none; the selected grid point's classifier is tested."
        ),
        "",
        "## Grid (validation error % after fine-tuning; * = selected)",
        "",
        "| model | point | val error % | best epoch | mean ‖J_f(x)‖_F | SAT % "
        "| pre-train s | fine-tune s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        for entry in row["grid"]:
            knob = KNOBS[row["model"]]
            point = GridPoint(entry.get(knob) if knob else None, entry["finetune_lr"])
            mark = "*" if entry["selected_by_validation"] else ""
            lines.append(
                f"| {row['model']} | {point_text(row['model'], point)}{mark} | "
                f"{entry['val_error']:.2f} | {entry['best_epoch']} | "
                f"{_sci(entry['mean_jacobian_norm'])} | {entry['sat']:.2f} | "
                f"{entry['pretrain_seconds']} | {entry['finetune_seconds']} |"
            )
    return "\n".join(lines) + "\n"


def write_outputs(
    out: Path,
    rows: Sequence[dict[str, Any]],
    meta: dict[str, Any],
    protocol: Protocol,
    *,
    done: bool,
) -> None:
    """Rewrite the three files in ``out`` (each atomically), ``done`` once every row is in."""
    meta = {**meta, "complete": done, "models_done": [r["model"] for r in rows]}
    atomic_write_bytes(out / "table1.json", (json.dumps(list(rows), indent=2) + "\n").encode())
    atomic_write_bytes(out / "table1_run.json", (json.dumps(meta, indent=2) + "\n").encode())
    atomic_write_bytes(out / "table1.md", markdown(rows, meta, protocol, done).encode())
