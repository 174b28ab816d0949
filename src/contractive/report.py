"""One self-contained HTML page comparing trained runs: every analysis figure and a table.

:func:`write_report` loads each run folder, analyses every run on the same data points (the
same radii for the contraction curves, the same starting points for the sampling chains) and
writes ``report.html`` with the figures embedded as base64 PNGs (no external file, script or
style sheet), plus the PNGs themselves under ``figures/``.

Figures
    For every data: the contraction-ratio curves and the Jacobian spectra of all runs on shared
    axes (one line per run, labelled by its folder name), and the training curves from each
    run's ``metrics.jsonl``. For image data, per run: the encoder filters, reconstructions,
    tangent directions and sampling chains.
Greedy stacks
    A run trained with ``greedy=True`` is labelled with what the paper calls it, e.g.
    ``cae2: CAE-2 (greedy)``; its training curves are drawn a line per layer, and its
    reconstruction loss is the whole stack's, recorded when its training ended.
Table
    Per run: the model and objective, the last validation reconstruction loss, mean
    ``||J_f(x)||_F``, SAT, the contraction ratio at the smallest and largest radius, and how many
    mean singular values exceed 10% of the largest. The definitions are in
    :mod:`contractive.analysis` and are repeated under the table.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .analysis import (
    DEFAULT_SIGMA,
    DEFAULT_STEPS,
    SPECTRUM_FRACTION,
    Analysis,
    analyze,
    code_activation,
    default_radii,
    sample_chain,
    tangent_directions,
)
from .data import SPLITS, draw_indices
from .exceptions import ConfigError
from .runs import METRICS_FILE, Run, atomic_write_bytes, load_run
from .tangents import TangentBases
from .validation import check_choice, check_int, check_output_dir
from .workflow import layer_epochs, load_run_data

__all__ = [
    "Report",
    "RunReport",
    "format_table",
    "write_report",
]

REPORT_FILE = "report.html"
FIGURES_DIR = "figures"


@dataclass
class RunReport:
    """What the report holds for one run.

    Attributes
    ----------
    label : str
        The run folder's name (made unique among the runs of the report), followed for a
        greedy stack by the paper's name for it: ``cae2: CAE-2 (greedy)``.
    run : Run
        The loaded run.
    analysis : Analysis
        Its metrics on the report's points.
    history : list of dict
        The rows of its ``metrics.jsonl``.
    figures : dict of str to Path
        Its own figures (``filters``, ``reconstructions``, ``tangents``, ``samples``); empty
        for non-image data.

    Examples
    --------
    :func:`write_report` builds these; one by hand, for an untrained model:

    >>> import torch
    >>> from contractive.config import Config
    >>> from contractive.nn import mlp_autoencoder
    >>> model = mlp_autoencoder([64, 8])
    >>> run = Run(Path("runs/cae"), Config(hidden=[8]), {"n_features": 64}, model)
    >>> rr = RunReport("cae", run, analyze(model, torch.rand(20, 64)), history=[])
    >>> rr.analysis.n_points, rr.analysis.spectrum.shape, rr.figures
    (20, (8,), {})
    """

    label: str
    run: Run
    analysis: Analysis
    history: list[dict[str, Any]]
    figures: dict[str, Path] = field(default_factory=dict)


@dataclass
class Report:
    """A written report: where it is and what it measured.

    Attributes
    ----------
    path : Path
        ``report.html``.
    runs : list of RunReport
        One per run, in the order given.
    figures : dict of str to Path
        The shared figures: ``contraction``, ``spectrum``, ``training``.
    source : str
        The data the runs were analysed on.

    Examples
    --------
    :func:`write_report` returns one; by hand, around a :class:`RunReport`:

    >>> import torch
    >>> from contractive.config import Config
    >>> from contractive.nn import mlp_autoencoder
    >>> run = Run(Path("runs/ae"), Config(hidden=[4]), {"n_features": 6}, mlp_autoencoder([6, 4]))
    >>> rr = RunReport("ae", run, analyze(run.model, torch.rand(10, 6)), history=[])
    >>> report = Report(Path("out") / REPORT_FILE, [rr], figures={}, source="digits")
    >>> report.path.name, [r.label for r in report.runs]
    ('report.html', ['ae'])
    """

    path: Path
    runs: list[RunReport]
    figures: dict[str, Path]
    source: str


# ---------------------------------------------------------------------------------------------
# Labels and descriptions.


def _family(run: Run) -> str:
    """The paper's name for what each layer of ``run`` is: CAE, CAE+H, DAE-g, DAE-b, AE+wd, AE."""
    cfg = run.config
    if cfg.higher_order > 0:
        return "CAE+H"
    if cfg.contraction > 0:
        return "CAE"
    if cfg.noise_std > 0:
        return "DAE-g"
    if cfg.mask_prob > 0:
        return "DAE-b"
    return "AE+wd" if cfg.weight_decay > 0 else "AE"


def _labels(runs: Sequence[Run]) -> list[str]:
    labels: list[str] = []
    for run in runs:
        base = run.path.resolve().name or str(run.path)
        if run.config.greedy:
            # The paper's name: CAE-2 is two CAE layers trained greedily.
            base += f": {_family(run)}-{len(run.config.hidden)} (greedy)"
        label, n = base, 2
        while label in labels:
            label, n = f"{base} ({n})", n + 1
        labels.append(label)
    return labels


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_") or "run"


def _describe_model(run: Run) -> str:
    cfg = run.config
    sizes = " → ".join(map(str, [run.n_features, *cfg.hidden]))
    text = f"{cfg.architecture} {sizes}, {cfg.activation}, {'tied' if cfg.tied else 'untied'}"
    if cfg.greedy:
        text += f", trained greedily one layer at a time ({len(cfg.hidden)} layers)"
    return text


def _describe_objective(run: Run) -> str:
    cfg = run.config
    text = f"{cfg.loss} + {cfg.contraction:g}·‖J‖²"
    if cfg.higher_order:
        text += f" + {cfg.higher_order:g}·CAE+H"
    if cfg.weight_decay:
        text += f" + {cfg.weight_decay:g}·‖W‖²"
    if cfg.noise_std:
        text += f"; Gaussian noise {cfg.noise_std:g}"
    if cfg.mask_prob:
        text += f"; masking {cfg.mask_prob:g}"
    return text


def _last_recon(rr: RunReport) -> float | None:
    stack = rr.run.meta.get("stack") if rr.run.config.greedy else None
    if stack is not None:
        # The last lines of a greedy run are its top layer's, reconstructing codes: the
        # whole stack's loss was recorded when training ended.
        return None if stack.get("recon") is None else float(stack["recon"])
    history = rr.history
    if not history:
        return None
    last = history[-1]
    value = last.get("val_recon")
    if value is None:
        value = last.get("recon")
    return None if value is None else float(value)


def _epochs(rr: RunReport) -> str:
    """Epochs trained: ``20``, or for a greedy stack each layer's, ``20 + 20``."""
    if not rr.run.config.greedy:
        return str(len(rr.history))
    return " + ".join(map(str, layer_epochs(rr.history, len(rr.run.config.hidden))))


def _sat_note(run: Run) -> str:
    act = code_activation(run.model)
    name = type(act).__name__ if act is not None else "an empty encoder's"
    return f"SAT is undefined for {name} codes: it needs a bounded (sigmoid or tanh) code."


def _fmt(value: float | None, spec: str = ".4g") -> str:
    return "n/a" if value is None else format(value, spec)


def _rows(report: Report) -> tuple[list[str], list[list[str]]]:
    first = report.runs[0].analysis.contraction.radii
    header = [
        "run",
        "model",
        "objective",
        "epochs",
        "val recon",
        "mean ‖J‖_F",
        "SAT",
        f"ratio r={first[0]:.3g}",
        f"ratio r={first[-1]:.3g}",
        f"# s.v. > {SPECTRUM_FRACTION:g}·max",
        "largest s.v.",
    ]
    rows = []
    for rr in report.runs:
        a = rr.analysis
        sat = None if a.saturation is None else 100.0 * a.saturation
        rows.append(
            [
                rr.label,
                _describe_model(rr.run),
                _describe_objective(rr.run),
                _epochs(rr),
                _fmt(_last_recon(rr)),
                _fmt(a.mean_jacobian_norm),
                "n/a" if sat is None else f"{sat:.2f}%",
                _fmt(float(a.contraction.ratio[0])),
                _fmt(float(a.contraction.ratio[-1])),
                f"{a.n_significant()} / {a.spectrum.size}",
                _fmt(float(a.spectrum[0]) if a.spectrum.size else None),
            ]
        )
    return header, rows


def format_table(report: Report) -> str:
    """The metrics table as aligned plain text (what ``contractive report`` prints).

    Numbers are shown with 4 significant digits; the model and objective columns of the HTML
    table are left out.

    Examples
    --------
    A report built by hand, with made-up metrics (the header is wrapped here):

    >>> import numpy as np
    >>> from contractive.analysis import ContractionCurve
    >>> from contractive.config import Config
    >>> from contractive.nn import mlp_autoencoder
    >>> model = mlp_autoencoder([64, 8])
    >>> run = Run(Path("runs/cae"), Config(hidden=[8]), {"n_features": 64}, model)
    >>> curve = ContractionCurve(radii=np.array([0.01, 1.0]), ratio=np.array([0.05, 0.04]))
    >>> metrics = Analysis(100, 0.41, 0.02, curve, spectrum=np.array([0.2, 0.1, 0.01]))
    >>> rr = RunReport("cae", run, metrics, history=[{"epoch": 1, "val_recon": 43.4}])
    >>> print(format_table(Report(Path("report.html"), [rr], {}, "digits")))
    run  epochs  val recon  mean ‖J‖_F  SAT    ratio r=0.01  ratio r=1  # s.v. > 0.1·max
      largest s.v.
    cae  1       43.4       0.41        2.00%  0.05          0.04       2 / 3             0.2
    """
    header, rows = _rows(report)
    keep = [i for i, h in enumerate(header) if h not in ("model", "objective")]
    table = [[header[i] for i in keep]] + [[row[i] for i in keep] for row in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(keep))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in table
    )


# ---------------------------------------------------------------------------------------------
# Figures and HTML.


def _draw(
    runs: list[RunReport],
    points: list[torch.Tensor],
    fig_dir: Path,
    *,
    sigma: float,
    steps: int,
    chains: int,
    seed: int,
) -> dict[str, Path]:
    from .plots import (
        plot_contraction_curves,
        plot_filters,
        plot_reconstructions,
        plot_samples,
        plot_spectra,
        plot_tangent_moves,
        plot_tangents,
        plot_training_curves,
    )

    shared = {
        "contraction": plot_contraction_curves(
            {rr.label: rr.analysis.contraction for rr in runs},
            fig_dir / "contraction.png",
        ),
        "spectrum": plot_spectra(
            {rr.label: rr.analysis.spectrum for rr in runs},
            fig_dir / "spectrum.png",
            fraction=SPECTRUM_FRACTION,
        ),
        "training": plot_training_curves(_histories(runs), fig_dir / "training.png"),
    }
    for rr, x in zip(runs, points, strict=True):
        shape = rr.run.meta.get("image_shape")
        if not shape:
            continue
        image_shape = tuple(int(s) for s in shape)
        model = rr.run.model
        name = _slug(rr.label)
        with torch.no_grad():
            x_hat = model(x[:10]).x_hat.reshape(min(10, x.shape[0]), -1)
        tangents = tangent_directions(model, x[:4], k=min(5, int(rr.analysis.spectrum.size)))
        chain = sample_chain(model, x[:chains], sigma=sigma, steps=steps, seed=seed)
        # Moves of a quarter and a half of a typical input's norm: visible, still the digit.
        scale = float(x[:4].norm(dim=1).mean())
        moves = fig_dir / f"{name}-moves.png"
        plot_tangent_moves(
            model,
            x[:4],
            k=tangents.vectors.shape[1],
            steps=(-scale / 2, -scale / 4, 0.0, scale / 4, scale / 2),
            image_shape=image_shape,
            tangents=TangentBases(tangents.vectors.numpy(), tangents.values.numpy()),
            path=moves,
        )
        rr.figures = {
            "filters": plot_filters(model.encoder, image_shape, fig_dir / f"{name}-filters.png"),
            "reconstructions": plot_reconstructions(
                x[:10].numpy(),
                x_hat.numpy(),
                image_shape,
                fig_dir / f"{name}-reconstructions.png",
            ),
            "tangents": plot_tangents(
                x[:4].numpy(),
                tangents.values.numpy(),
                tangents.vectors.numpy(),
                image_shape,
                fig_dir / f"{name}-tangents.png",
            ),
            "moves": moves,
            "samples": plot_samples(chain, image_shape, fig_dir / f"{name}-samples.png"),
        }
    return shared


def _histories(runs: list[RunReport]) -> dict[str, list[dict[str, Any]]]:
    """The training curves to draw: one per run, one per layer of a greedy stack."""
    curves: dict[str, list[dict[str, Any]]] = {}
    for rr in runs:
        layers = sorted({row["layer"] for row in rr.history if "layer" in row})
        if not rr.run.config.greedy or not layers:
            curves[rr.label] = rr.history
            continue
        for k in layers:
            curves[f"{rr.label}, layer {k}"] = [r for r in rr.history if r.get("layer") == k]
    return curves


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }
th, td { border: 1px solid #bbb; padding: 0.3em 0.6em; text-align: left; }
th { background: #eee; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.85em; color: #555; }
.defs { font-size: 0.85em; color: #444; }
"""

_CAPTIONS = {
    "contraction": "Mean contraction ratio ‖f(x1) − f(x0)‖ / ‖x1 − x0‖ for x1 uniform on the "
    "sphere of radius r around each point x0 (same directions for every run and radius).",
    "spectrum": "Singular values of J_f(x), sorted, averaged over the points; right: divided by "
    "the largest, with the 10% line.",
    "training": "Per-epoch reconstruction loss (dashed: validation), penalty ‖J_f(x)‖²_F without "
    "λ, and validation objective, from metrics.jsonl. A greedy stack has a line per layer, each "
    "on that layer's own inputs (layer 2 reconstructs the codes of layer 1).",
    "filters": "Encoder filters: the first layer's weights as images (grey is zero).",
    "reconstructions": "Inputs (top) and reconstructions (bottom).",
    "tangents": "Each input beside the leading right singular vectors of J_f(x), marked with "
    "their singular values (yellow): the input directions along which the code changes most.",
    "moves": "Each input, its leading tangents (red +, blue −), and the input moved along the "
    "first, x + t·u₁ for t from −½ to +½ of the input's norm, reconstructed: the deformations "
    "the encoder is sensitive to (t = 0 is the plain reconstruction).",
    "samples": "Sampling chains x ← g(f(x) + J Jᵀ α), α ~ N(0, σ²I), one row per chain.",
    "scored": "Samples of contractive sample (top) and chains (below), from RUN/sampling/.",
}


def _sampling_section(run: Run) -> list[str]:
    """What ``contractive sample RUN --out RUN/sampling --parzen`` measured, if it ran."""
    folder = run.path / "sampling"
    if not (folder / "sampling.json").is_file():
        return []
    meta = json.loads((folder / "sampling.json").read_text())
    parts = ["<h3>Samples, scored</h3>"]
    rows = meta.get("parzen") or {}
    if rows:
        cells = "".join(
            f"<tr><td>{html.escape(name)}</td><td class=num>{row['log_likelihood']:.1f} ± "
            f"{row['standard_error']:.1f}</td><td class=num>{row['sigma']:.3g}</td></tr>"
            for name, row in rows.items()
        )
        parts.append(
            "<table><thead><tr><th>samples</th><th>Parzen log-likelihood (test)</th>"
            f"<th>window σ</th></tr></thead><tbody>{cells}</tbody></table>"
        )
    mix = meta.get("mixing")
    if mix:
        parts.append(
            f"<p>Mixing: {mix['classes_visited']:.2f} of 10 classes visited in {mix['steps']} "
            f"steps, mean of {mix['chains']} chains.</p>"
        )
    if (folder / "samples.png").is_file():
        parts.append(_img(folder / "samples.png", "scored", f"{run.path.name}: samples"))
    return parts


def _img(path: Path, key: str, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<figure id="fig-{html.escape(path.stem)}"><img alt="{html.escape(alt)}" '
        f'src="data:image/png;base64,{data}"><figcaption>{html.escape(_CAPTIONS[key])}'
        "</figcaption></figure>"
    )


def _radii_note(report: Report) -> str:
    r = report.runs[0].analysis.contraction.radii
    return (
        f"{r.size} radii from {r[0]:.3g} to {r[-1]:.3g}, log-spaced: 10⁻³ to 10² times the "
        "median distance between two of the points. Far from the data a bounded code "
        "saturates (sigmoid units move by at most √d_h in all), so there the ratio falls like "
        "1/r; points that far leave the data's range, which the ratio does not need."
    )


def _html(
    report: Report, *, split: str, seed: int, sigma: float, steps: int, image_data: bool
) -> str:
    header, rows = _rows(report)
    numeric = {4, 5, 6, 7, 8, 9, 10}
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{html.escape(c)}</td>'
            if i in numeric
            else f"<td>{html.escape(c)}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    n_points = report.runs[0].analysis.n_points
    from .data import DATASETS

    where = f"split {split}" if report.source.strip().lower() in DATASETS else "whole file"
    notes = [
        "<b>mean ‖J‖_F</b>: Frobenius norm of each point's Jacobian of the encoder, averaged "
        "over the points; no other normalisation.",
        "<b>SAT</b>: share of code units with h &lt; 0.05 or h &gt; 0.95 (sigmoid code) or "
        "|h| &gt; 0.9 (tanh code, the same relative thresholds), over all points and units.",
        "<b>ratio r</b>: mean contraction ratio at the smallest and the largest radius of the "
        "curve (10⁻³ and 10² times the median distance between two points: the Jacobian's gain, "
        "and far into saturation).",
        f"<b># s.v. &gt; {SPECTRUM_FRACTION:g}·max</b>: mean singular values of J_f(x) above "
        f"{SPECTRUM_FRACTION:g} times the largest mean singular value, out of min(d_h, d_x).",
        "<b>val recon</b>: reconstruction loss on the run's validation split at its last epoch "
        "(training loss when it had none); for a greedy stack, the whole stack's, from the "
        "input through every layer and back, when its training ended.",
    ]
    notes += [
        html.escape(_sat_note(rr.run)) for rr in report.runs if rr.analysis.saturation is None
    ]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>contractive report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>contractive report</h1>",
        f"<p>Data: {html.escape(report.source)} ({html.escape(where)}), {n_points} points "
        f"drawn with seed {seed} (the spectrum averages over the first "
        f"{report.runs[0].analysis.spectrum_points} of them). Runs: "
        + ", ".join(html.escape(rr.label) for rr in report.runs)
        + ".</p>",
        "<h2>Metrics</h2>",
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>",
        '<ul class="defs">' + "".join(f"<li>{n}</li>" for n in notes) + "</ul>",
        "<h2>Contraction ratio</h2>",
        f"<p>{html.escape(_radii_note(report))}</p>",
        _img(report.figures["contraction"], "contraction", "contraction ratio against radius"),
        "<h2>Jacobian spectrum</h2>",
        _img(report.figures["spectrum"], "spectrum", "mean singular values of the Jacobian"),
        "<h2>Training curves</h2>",
        _img(report.figures["training"], "training", "training curves"),
    ]
    if not image_data:
        parts.append(
            "<p>Filters, reconstructions, tangents and samples are drawn for image data only; "
            "these runs were trained on tabular data.</p>"
        )
    for rr in report.runs:
        if not rr.figures:
            continue
        parts.append(f"<h2>{html.escape(rr.label)}</h2>")
        parts.append(
            f"<p>{html.escape(_describe_model(rr.run))}; "
            f"{html.escape(_describe_objective(rr.run))}.</p>"
        )
        for key, path in rr.figures.items():
            if key == "samples":
                parts.append(f"<p>σ = {sigma:g}, {steps} steps, seed {seed}.</p>")
            parts.append(_img(path, key, f"{rr.label}: {key}"))
        parts += _sampling_section(rr.run)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# ---------------------------------------------------------------------------------------------
# Public API.


def write_report(
    runs: Sequence[str | os.PathLike[str] | Run],
    out: str | os.PathLike[str],
    *,
    data: str | None = None,
    data_dir: str | None = None,
    split: str = "test",
    n_points: int = 500,
    spectrum_points: int = 200,
    seed: int = 0,
    sigma: float = DEFAULT_SIGMA,
    steps: int = DEFAULT_STEPS,
    chains: int = 6,
) -> Report:
    """Analyse runs on the same data and write ``out/report.html`` (and ``out/figures/``).

    Parameters
    ----------
    runs : sequence of path or Run
        Run folders (or loaded runs) trained on inputs of the same size.
    out : str or path-like
        Output folder; created if missing.
    data : str, optional
        ``"digits"``, ``"mnist"``, ``"fashion-mnist"`` or a ``.npy``/``.npz``/``.csv`` path,
        on which every run is analysed; default: the first run's training data.
    data_dir : str, optional
        Where the dataset files are (default: each run's own setting).
    split : {"test", "train", "all"}
        Split of a built-in dataset; files are used whole.
    n_points : int
        Points drawn (with ``seed``) for the metrics; all of them if the data have fewer.
    spectrum_points : int
        The spectrum is averaged over the first ``spectrum_points`` of them (an
        eigendecomposition per point: about 0.1 s each for 1000 x 784 Jacobians on one core).
    seed : int
        Seed of the points, the contraction directions and the sampling noise.
    sigma, steps, chains
        Sampling chains drawn for image data (see :func:`contractive.analysis.sample_chain`).

    Returns
    -------
    Report
        The path of ``report.html``, each run's metrics and the figures.

    Raises
    ------
    ConfigError
        No runs, a bad parameter, or ``out`` is a file.
    DataError
        The data cannot be loaded or do not fit a run's input size.

    Examples
    --------
    Two runs on a small table of numbers, with and without the penalty (runs on images also
    get their filters, reconstructions, tangents and samples drawn):

    >>> import tempfile
    >>> import numpy as np
    >>> from contractive.config import Config
    >>> from contractive.workflow import train_run
    >>> folder = Path(tempfile.mkdtemp())
    >>> np.save(folder / "x.npy", np.random.default_rng(0).random((200, 10), dtype=np.float32))
    >>> runs = [
    ...     train_run(
    ...         Config(data=str(folder / "x.npy"), hidden=[4], epochs=1, contraction=c),
    ...         folder / name, quiet=True, plots=False,
    ...     )
    ...     for name, c in (("cae", 0.1), ("ae", 0.0))
    ... ]
    >>> report = write_report(runs, folder / "report", n_points=100, spectrum_points=20)
    >>> report.path.relative_to(folder).as_posix(), [rr.label for rr in report.runs]
    ('report/report.html', ['cae', 'ae'])
    >>> sorted(report.figures), report.runs[0].analysis.n_points
    (['contraction', 'spectrum', 'training'], 100)
    """
    if not runs:
        raise ConfigError("The 'runs' parameter must name at least one run folder. Got none.")
    n_points = check_int("n_points", n_points, low=1)
    spectrum_points = check_int("spectrum_points", spectrum_points, low=1)
    steps = check_int("steps", steps, low=1)
    chains = check_int("chains", chains, low=1)
    split = check_choice("split", split, SPLITS)
    out_dir = check_output_dir(out)
    from .runs import read_metrics

    loaded = [r if isinstance(r, Run) else load_run(r) for r in runs]
    labels = _labels(loaded)
    # Every run is analysed on the same data: --data, else the first run's training data.
    source = data or loaded[0].config.data
    cache: dict[tuple[Any, ...], Any] = {}
    points: list[torch.Tensor] = []
    for run in loaded:
        key = (data_dir or run.config.data_dir, run.config.scale, run.config.label_column)
        if key not in cache:
            cache[key] = load_run_data(run, source, data_dir=data_dir, split=split)
        ds = cache[key]
        idx = draw_indices(ds.n_samples, n_points, seed)
        points.append(run.prepare(ds.X[idx]))  # (n, n_features), scaled as in training
    radii = default_radii(points[0])  # shared, so that every curve has the same axis
    reports = [
        RunReport(
            label,
            run,
            analyze(run.model, x, radii=radii, seed=seed, spectrum_points=spectrum_points),
            read_metrics(run.path / METRICS_FILE),
        )
        for label, run, x in zip(labels, loaded, points, strict=True)
    ]
    fig_dir = out_dir / FIGURES_DIR
    fig_dir.mkdir(parents=True, exist_ok=True)
    shared = _draw(reports, points, fig_dir, sigma=sigma, steps=steps, chains=chains, seed=seed)
    report = Report(out_dir / REPORT_FILE, reports, shared, source)
    image_data = any(rr.figures for rr in reports)
    text = _html(report, split=split, seed=seed, sigma=sigma, steps=steps, image_data=image_data)
    atomic_write_bytes(report.path, text.encode("utf-8"))
    return report
