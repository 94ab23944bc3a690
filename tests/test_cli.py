"""The README's commands: `make demo` runs `bgmm demo`, which must print the model and write a PNG."""

import pathlib
import re

import pytest

from bgmm.cli import main

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_demo_prints_model_and_writes_picture(tmp_path, capsys):
    out = tmp_path / "demo.png"
    assert main(["demo", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    for needle in ("Chosen model", "weights", "means", "covariances", "log-likelihood", "BIC",
                   "converged"):
        assert needle in text
    assert str(out.resolve()) in text
    assert out.stat().st_size > 20_000 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_readme_commands_are_wired():
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "make demo" in readme and "make test" in readme
    assert re.search(r"^demo:.*\n\t.*bgmm demo", makefile, re.M)
    assert re.search(r"^test:.*\n\t.*pytest", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_help_explains_options(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    assert "--max-components" in capsys.readouterr().out
