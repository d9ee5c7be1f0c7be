"""``netmaster`` and ``netplugin`` print the version block for --version / -version / -v and exit 0."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from contivpy.common import version

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(
    r"\AVersion: \S+-contivpy\S*\nGitCommit: [0-9a-f]*\nBuildTime: \d\d-\d\d-\d{4}\.\d\d-\d\d-\d\d\.UTC\n\Z"
)


@pytest.mark.parametrize("cmd", ["netmaster", "netplugin"])
@pytest.mark.parametrize("flag", ["--version", "-version", "-v"])
def test_version_flag_prints_block(cmd, flag):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    # --mode bogus would be a config error (exit 22): --version wins over validation.
    out = subprocess.run(
        [str(ROOT / "bin" / cmd), flag, "--mode", "bogus"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert out.returncode == 0, out
    assert BLOCK.match(out.stdout), out.stdout
    assert out.stderr == ""
    info = version.version_info()
    assert out.stdout.startswith(f"Version: {info['Version']}\nGitCommit: {info['GitCommit']}\n")
    assert info["GitCommit"], "a checkout (plain or git worktree) reports its commit"


def test_commit_read_from_plain_and_worktree_checkouts(tmp_path):
    sha = "0123456789abcdef0123456789abcdef01234567"
    plain = tmp_path / "plain"
    (plain / ".git" / "refs" / "heads").mkdir(parents=True)
    (plain / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (plain / ".git" / "refs" / "heads" / "main").write_text(sha + "\n")
    assert version.git_commit(plain) == sha

    # A worktree: .git is a file naming its gitdir; the branch ref lives in the common dir (packed).
    common = tmp_path / "repo.git"
    wtdir = common / "worktrees" / "wt"
    wtdir.mkdir(parents=True)
    (wtdir / "HEAD").write_text("ref: refs/heads/topic\n")
    (wtdir / "commondir").write_text("../..\n")
    (common / "packed-refs").write_text(f"# pack-refs with: peeled\n{sha} refs/heads/topic\n")
    wt = tmp_path / "wt"
    wt.mkdir()
    (wt / ".git").write_text(f"gitdir: {wtdir}\n")
    assert version.git_commit(wt) == sha

    assert version.git_commit(tmp_path / "nogit") == ""  # an installed wheel: no commit, no error


def test_installed_version_read_from_dist_info(tmp_path, monkeypatch):
    """The version comes from the first contivpy dist-info / egg-info on sys.path, as
    importlib.metadata picks it, without importing importlib.metadata (netmaster's start-up)."""
    import importlib.metadata

    try:
        expected = importlib.metadata.version("contivpy")
    except importlib.metadata.PackageNotFoundError:
        expected = ""
    assert version.installed_version() == expected

    first, second = tmp_path / "a", tmp_path / "b"
    (first / "contivpy-9.8.7.dist-info").mkdir(parents=True)
    (first / "contivpy-9.8.7.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: contivpy\nVersion: 9.8.7\n\nVersion: not a header\n"
    )
    (first / "other_pkg-1.0.dist-info").mkdir()
    (second / "contivpy.egg-info").mkdir(parents=True)
    (second / "contivpy.egg-info" / "PKG-INFO").write_text("Name: contivpy\nVersion: 1.2.3\n")
    monkeypatch.setattr("sys.path", [str(tmp_path / "missing"), str(first), str(second)])
    assert version.installed_version() == "9.8.7"
    monkeypatch.setattr("sys.path", [str(second), str(first)])
    assert version.installed_version() == "1.2.3"
    monkeypatch.setattr("sys.path", [str(tmp_path / "missing")])
    assert version.installed_version() == ""
    assert version.version_info()["Version"].startswith(version.FALLBACK_VERSION + "-contivpy")
