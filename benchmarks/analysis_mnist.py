"""The paper's analysis findings on MNIST: a CAE against a plain AE, one layer of 1000 units.

Trains a CAE and an AE (same architecture, seed and optimiser; only lambda differs) on MNIST,
analyses both on the same test points, writes the HTML report with every figure and
``metrics.json`` with every number behind them, prints the table, and exits with status 1 if
any of the findings of Rifai et al. (2011) does not hold:

1. the CAE's Jacobian spectrum falls off faster: fewer mean singular values above 10% of the
   largest;
2. its SAT (share of saturated sigmoid units) is higher;
3. its contraction ratio at the smallest radius is lower.

Usage (about 10 minutes on 2 CPU cores)::

    nice -n 5 .venv/bin/python benchmarks/analysis_mnist.py --out runs/analysis_mnist \\
        --copy-figures docs/figures

``--reuse`` analyses run folders already trained by an earlier call instead of training again.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from contractive.analysis import SPECTRUM_FRACTION
from contractive.config import Config
from contractive.report import Report, write_report
from contractive.runs import load_run, read_metrics
from contractive.workflow import train_run

REPO = Path(__file__).resolve().parents[1]
# Figures shown in docs/analysis.md (the filters are in the report: 100+ KB each).
DOC_FIGURES = (
    "contraction.png",
    "spectrum.png",
    "training.png",
    "cae-tangents.png",
    "ae-tangents.png",
    "cae-samples.png",
    "ae-samples.png",
)


def _default_data_dir() -> str:
    return os.environ.get("CONTRACTIVE_DATA_DIR") or str(REPO.parent / "shared" / "data" / "mnist")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=_default_data_dir(), help="folder with the MNIST .gz")
    p.add_argument("--out", default=str(REPO / "runs" / "analysis_mnist"), help="output folder")
    p.add_argument("--epochs", type=int, default=5, help="epochs per model (default: 5)")
    p.add_argument("--contraction", type=float, default=0.5, help="the CAE's lambda (0.5)")
    p.add_argument("--n-points", type=int, default=500, help="test points analysed (500)")
    p.add_argument(
        "--spectrum-points", type=int, default=500, help="of those, in the spectrum (500)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of training and analysis (0)")
    p.add_argument("--reuse", action="store_true", help="analyse existing runs, do not train")
    p.add_argument("--copy-figures", metavar="DIR", help="also copy the main PNGs to DIR")
    return p.parse_args(argv)


def _config(args: argparse.Namespace, contraction: float) -> Config:
    # The paper's model: one sigmoid layer of 1000 units, tied weights, cross-entropy.
    return Config(
        data="mnist",
        data_dir=args.data_dir,
        hidden=[1000],
        activation="sigmoid",
        tied=True,
        loss="bce",
        contraction=contraction,
        epochs=args.epochs,
        seed=args.seed,
        device="cpu",
    )


def _train(args: argparse.Namespace, name: str, contraction: float) -> Path:
    out = Path(args.out) / name
    done = len(read_metrics(out / "metrics.jsonl")) >= args.epochs
    if args.reuse and done:
        load_run(out)  # fails early on a damaged folder
        print(f"{name}: reusing {out}", flush=True)
        return out
    start = time.perf_counter()
    train_run(_config(args, contraction), out, overwrite=True, quiet=True)
    print(f"{name}: trained in {time.perf_counter() - start:.0f} s -> {out}", flush=True)
    return out


def _table(report: Report) -> str:
    rows = [
        (
            "run",
            "lambda",
            f"# s.v. > {SPECTRUM_FRACTION:g} max",
            "SAT",
            f"ratio r={report.runs[0].analysis.contraction.radii[0]:.3g}",
            "mean ||J||_F",
            "largest s.v.",
        )
    ]
    for rr in report.runs:
        a = rr.analysis
        rows.append(
            (
                rr.label,
                f"{rr.run.config.contraction:g}",
                f"{a.n_significant()} / {a.spectrum.size}",
                "n/a" if a.saturation is None else f"{100 * a.saturation:.1f}%",
                f"{a.contraction.ratio[0]:.4f}",
                f"{a.mean_jacobian_norm:.3f}",
                f"{a.spectrum[0]:.3f}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _write_json(report: Report, path: Path) -> None:
    """Every number behind the table and the figures, for docs and later comparison."""
    payload = {
        rr.label: {
            "contraction_lambda": rr.run.config.contraction,
            "n_points": rr.analysis.n_points,
            "spectrum_points": rr.analysis.spectrum_points,
            "mean_jacobian_norm": rr.analysis.mean_jacobian_norm,
            "saturation": rr.analysis.saturation,
            "n_significant": rr.analysis.n_significant(),
            "radii": rr.analysis.contraction.radii.tolist(),
            "contraction_ratio": rr.analysis.contraction.ratio.tolist(),
            "spectrum": rr.analysis.spectrum.tolist(),
        }
        for rr in report.runs
    }
    path.write_text(json.dumps(payload, indent=1) + "\n")


def _findings(report: Report) -> list[tuple[str, bool]]:
    by = {rr.label: rr.analysis for rr in report.runs}
    cae, ae = by["cae"], by["ae"]
    assert cae.saturation is not None
    assert ae.saturation is not None
    return [
        (
            f"spectrum falls off faster: {cae.n_significant()} < {ae.n_significant()} singular "
            f"values above {SPECTRUM_FRACTION:g} x the largest",
            cae.n_significant() < ae.n_significant(),
        ),
        (
            f"SAT is higher: {100 * cae.saturation:.1f}% > {100 * ae.saturation:.1f}%",
            cae.saturation > ae.saturation,
        ),
        (
            f"contraction ratio at the smallest radius is lower: "
            f"{cae.contraction.ratio[0]:.4f} < {ae.contraction.ratio[0]:.4f}",
            bool(cae.contraction.ratio[0] < ae.contraction.ratio[0]),
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    start = time.perf_counter()
    cae = _train(args, "cae", args.contraction)
    ae = _train(args, "ae", 0.0)
    t0 = time.perf_counter()
    report = write_report(
        [cae, ae],
        Path(args.out) / "report",
        data="mnist",
        data_dir=args.data_dir,
        split="test",
        n_points=args.n_points,
        spectrum_points=args.spectrum_points,
        seed=args.seed,
    )
    print(f"report: {time.perf_counter() - t0:.0f} s -> {report.path}\n")
    _write_json(report, Path(args.out) / "metrics.json")
    print(_table(report))
    print()
    ok = True
    for text, holds in _findings(report):
        print(f"[{'PASS' if holds else 'FAIL'}] {text}")
        ok &= holds
    if args.copy_figures:
        dest = Path(args.copy_figures)
        dest.mkdir(parents=True, exist_ok=True)
        for name in DOC_FIGURES:
            shutil.copyfile(report.path.parent / "figures" / name, dest / f"mnist-{name}")
        print(f"\ncopied {len(DOC_FIGURES)} figures to {dest}")
    print(f"\ntotal {time.perf_counter() - start:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
