"""Static checks run with the tests (so CI, which runs `make test`, runs them too):
ruff lint and format over the repository, mypy --strict over model/ and common/ ([tool.mypy])."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def _have(module: str) -> bool:
    return subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _have("ruff"), reason="ruff is in the test extras (make deps)")
def test_ruff_lint_and_format():
    lint = _run("ruff", "check", "--quiet", ".")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = _run("ruff", "format", "--check", "--quiet", ".")
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


@pytest.mark.skipif(not _have("mypy"), reason="mypy is in the test extras (make deps)")
def test_mypy_strict_on_model_and_common():
    res = _run("mypy", "--no-error-summary")
    assert res.returncode == 0, res.stdout + res.stderr
