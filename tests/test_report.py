"""Tests of contractive.report: reports rendered from tiny runs trained here, image and tabular.

The ``contractive report`` command itself is tested in ``tests/test_cli_report.py``.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pytest

from contractive.config import Config
from contractive.exceptions import ConfigError, DataError
from contractive.report import Report, format_table, write_report
from contractive.workflow import train_run

PNG = b"\x89PNG\r\n\x1a\n"
SHARED = ("contraction", "spectrum", "training")
PER_RUN = ("filters", "reconstructions", "tangents", "moves", "samples")


def _embedded(page: str) -> dict[str, bytes]:
    """Figure id -> decoded PNG bytes of every embedded image."""
    found = re.findall(
        r'<figure id="fig-([^"]+)"><img alt="[^"]*" src="data:image/png;base64,([^"]+)">', page
    )
    return {name: base64.b64decode(data) for name, data in found}


@pytest.fixture(scope="module")
def digits_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("runs")
    cae, ae = root / "cae", root / "ae"
    train_run(Config(data="digits", hidden=[16], epochs=2), cae, quiet=True, plots=False)
    train_run(
        Config(data="digits", hidden=[16], epochs=2, contraction=0.0), ae, quiet=True, plots=False
    )
    return cae, ae


@pytest.fixture(scope="module")
def image_report(
    digits_runs: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("report")
    report = write_report(digits_runs, out, n_points=60, seed=1)
    return out, report.path.read_text(encoding="utf-8")


def test_image_report_embeds_every_figure(image_report: tuple[Path, str]) -> None:
    out, page = image_report
    figures = _embedded(page)
    expected = {*SHARED, *(f"{run}-{kind}" for run in ("cae", "ae") for kind in PER_RUN)}
    assert set(figures) == expected
    for name, data in figures.items():
        assert data.startswith(PNG), name
        assert (out / "figures" / f"{name}.png").read_bytes() == data


def test_report_is_self_contained(image_report: tuple[Path, str]) -> None:
    _, page = image_report
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page
    assert "<link" not in page
    assert not re.search(r'src="(?!data:)', page)
    assert "http://" not in page
    assert "https://" not in page


def test_report_has_the_metrics_table(image_report: tuple[Path, str]) -> None:
    _, page = image_report
    table = re.search(r"<table>.*?</table>", page, re.S)
    assert table is not None
    rows = re.findall(r"<tr>(.*?)</tr>", table.group(0), re.S)
    assert len(rows) == 3  # header + two runs
    for column in ("mean ‖J‖_F", "SAT", "ratio r=", "# s.v. &gt; 0.1·max", "val recon"):
        assert column in rows[0]
    assert "<td>cae</td>" in rows[1]
    assert "<td>ae</td>" in rows[2]
    assert "bce + 0.1·‖J‖²" in rows[1]
    assert "bce + 0·‖J‖²" in rows[2]
    assert re.search(r'<td class="num">\d+\.\d+%</td>', rows[1])  # sigmoid: SAT defined
    assert "60 points drawn with seed 1 (the spectrum averages over the first 60 of them)" in page


@pytest.fixture(scope="module")
def tabular_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("tabular")
    data = root / "x.npy"
    np.save(data, np.random.default_rng(0).random((120, 10)).astype(np.float32))
    sig, relu = root / "sig", root / "relu"
    train_run(Config(data=str(data), hidden=[4], epochs=2), sig, quiet=True)
    train_run(Config(data=str(data), hidden=[4], epochs=2, activation="relu"), relu, quiet=True)
    return sig, relu


def test_tabular_report_has_the_shared_figures_only(
    tabular_runs: tuple[Path, Path], tmp_path: Path
) -> None:
    write_report(tabular_runs, tmp_path)
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    figures = _embedded(page)
    assert set(figures) == set(SHARED)
    assert all(data.startswith(PNG) for data in figures.values())
    assert "drawn for image data only" in page
    # SAT: defined for the sigmoid code, n/a with the reason for the ReLU code.
    rows = re.findall(r"<tr>(.*?)</tr>", page, re.S)
    assert re.search(r"\d+\.\d+%", rows[1])
    assert '<td class="num">n/a</td>' in rows[2]
    assert "SAT is undefined for ReLU codes: it needs a bounded (sigmoid or tanh) code." in page
    assert "(whole file), 120 points" in page  # all of them: fewer than n_points


def test_report_is_deterministic_and_labels_are_unique(
    tabular_runs: tuple[Path, Path], tmp_path: Path
) -> None:
    sig = tabular_runs[0]
    a = write_report([sig, sig], tmp_path / "a", n_points=50, seed=3)
    b = write_report([sig, sig], tmp_path / "b", n_points=50, seed=3)
    assert isinstance(a, Report)
    assert a.path == tmp_path / "a" / "report.html"
    assert a.path.read_bytes() == b.path.read_bytes()
    assert [rr.label for rr in a.runs] == ["sig", "sig (2)"]
    assert format_table(a).splitlines()[2].startswith("sig (2) ")
    first, second = (rr.analysis for rr in a.runs)
    assert first.n_points == 50
    np.testing.assert_array_equal(first.spectrum, second.spectrum)


def test_report_errors(
    digits_runs: tuple[Path, Path], tabular_runs: tuple[Path, Path], tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="'runs' parameter must name at least one run folder"):
        write_report([], tmp_path)
    with pytest.raises(ConfigError, match=r"'n_points' parameter must be an int .*Got 0 instead"):
        write_report([digits_runs[0]], tmp_path, n_points=0)
    with pytest.raises(ConfigError, match=r"'split' parameter must be a str among \{'train', '"):
        write_report([digits_runs[0]], tmp_path, split="dev")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="exists and is not a folder"):
        write_report([digits_runs[0]], blocker)
    # Every run is analysed on the first run's data (or --data): 64 digits pixels do not fit
    # a model of 10 inputs, nor 10 features a model of 64.
    with pytest.raises(DataError, match="X has 64 features, but the model in .* trained on 10"):
        write_report([digits_runs[0], tabular_runs[0]], tmp_path / "mixed")
    npy = str(tabular_runs[0].parent / "x.npy")
    with pytest.raises(DataError, match="X has 10 features, but the model in .* trained on 64"):
        write_report([digits_runs[0]], tmp_path / "other", data=npy)


# ---------------------------------------------------------------------------------------------
# A greedy stack beside a one-layer CAE: the paper's CAE-1 and CAE-2, tiny.


@pytest.fixture(scope="module")
def stack_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Report, str]:
    root = tmp_path_factory.mktemp("stack")
    cae1, cae2 = root / "cae1", root / "cae2"
    train_run(Config(hidden=[16], epochs=1), cae1, quiet=True, plots=False)
    train_run(Config(hidden=[16, 8], greedy=True, epochs=1), cae2, quiet=True, plots=False)
    report = write_report([cae1, cae2], root / "report", n_points=60, spectrum_points=10)
    return report, report.path.read_text(encoding="utf-8")


def test_report_names_a_greedy_stack_as_the_paper_does(stack_report: tuple[Report, str]) -> None:
    report, page = stack_report
    assert [rr.label for rr in report.runs] == ["cae1", "cae2: CAE-2 (greedy)"]
    lines = format_table(report).splitlines()
    assert lines[2].startswith("cae2: CAE-2 (greedy)  1 + 1 ")  # an epoch per layer
    assert "cae2: CAE-2 (greedy)" in page
    assert "trained greedily one layer at a time (2 layers)" in page
    assert set(_embedded(page)) == {
        *SHARED,
        *(f"{run}-{kind}" for run in ("cae1", "cae2_CAE-2_greedy") for kind in PER_RUN),
    }


def test_report_takes_a_greedy_stacks_own_reconstruction(stack_report: tuple[Report, str]) -> None:
    report, _ = stack_report
    cae1, cae2 = report.runs
    recon = cae2.run.meta["stack"]["recon"]
    assert format_table(report).splitlines()[2].split("  ")[2].strip() == f"{recon:.4g}"
    # Not its top layer's last line, which reconstructs codes of layer 1.
    assert cae2.history[-1]["layer"] == 2
    assert f"{cae2.history[-1]['val_recon']:.4g}" != f"{recon:.4g}"
    assert cae1.analysis.contraction.radii.shape == (21,)


def test_report_compares_contraction_on_shared_radii(stack_report: tuple[Report, str]) -> None:
    report, page = stack_report
    cae1, cae2 = (rr.analysis.contraction for rr in report.runs)
    np.testing.assert_array_equal(cae1.radii, cae2.radii)
    assert cae2.radii[-1] / cae2.radii[0] == pytest.approx(1e5)
    assert "21 radii from " in page
    assert "10⁻³ to 10² times the median distance between two of the points" in page


def test_report_shows_the_scored_samples_of_run_sampling(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from contractive.cli import main

    run = tmp_path / "cae"
    train_run(Config(data="digits", hidden=[16], epochs=1), run, quiet=True, plots=False)
    before = write_report([run], tmp_path / "r0", n_points=40).path.read_text(encoding="utf-8")
    assert "Samples, scored" not in before
    argv = ["sample", str(run), "--out", str(run / "sampling"), "--parzen", "--n", "30"]
    assert main([*argv, "--burn-in", "2", "--mixing-chains", "3", "--mixing-steps", "4"]) == 0
    capsys.readouterr()
    page = write_report([run], tmp_path / "r1", n_points=40).path.read_text(encoding="utf-8")
    assert "<h3>Samples, scored</h3>" in page
    assert re.search(r"<td>training images</td><td class=num>-?\d+\.\d ± \d+\.\d</td>", page)
    assert "classes visited in 4 steps, mean of 3 chains" in page
    assert _embedded(page)["samples"].startswith(PNG)  # RUN/sampling/samples.png
