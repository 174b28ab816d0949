"""Helpers shared by the reliability tests: run the command, read its one-line error."""

from __future__ import annotations

import re

import pytest

from contractive.cli import main


def cli_error(capsys: pytest.CaptureFixture[str], *argv: object, status: int = 1) -> str:
    """Run the command; check it failed with one clean line; return the message."""
    code = main([str(a) for a in argv])
    _, err = capsys.readouterr()
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("contractive: error: "), err
    assert code == status, err
    return lines[0].removeprefix("contractive: error: ")


def cli_ok(capsys: pytest.CaptureFixture[str], *argv: object) -> str:
    """Run the command; check it succeeded; return its standard output."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def expect(message: str, pattern: str) -> None:
    """Assert that ``pattern`` (a regular expression) occurs in ``message``."""
    assert re.search(pattern, message), f"{pattern!r} not found in {message!r}"
