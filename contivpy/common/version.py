"""Version of the contivpy daemons, as ``netmaster``/``netplugin --version`` and GET /version show it.

``version_info()`` returns ``{"GitCommit", "Version", "BuildTime"}``, the original's three fields.
The version is the installed distribution's: the ``Version:`` header of the first
``contivpy-*.dist-info/METADATA`` (or ``contivpy*.egg-info/PKG-INFO``) found on ``sys.path``, the
distribution ``importlib.metadata`` would pick, read directly because importing
``importlib.metadata`` and letting it scan every installed distribution costs several ms of
netmaster's first GET /version; the constant below is the fallback when contivpy runs from a
checkout that was never installed (or from a zip archive, which has no such files). The commit is read from the
checkout's git metadata without running git (a worktree's ``.git`` file is followed); an installed
wheel has none and reports an empty commit. BuildTime is the mtime of the package's ``__init__.py``.
Only the standard library is imported, so ``--version`` stays fast.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

FALLBACK_VERSION = "0.1.0"
DIST = "contivpy"


def _metadata_version(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    break  # end of the headers
                if line.startswith("Version:"):
                    return line[8:].strip()
    except (OSError, UnicodeError):
        pass
    return ""


def installed_version(name: str = DIST) -> str:
    """The version of distribution ``name`` (lower case, no ``-``/``_``/``.``), "" if none is found."""
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except (OSError, TypeError):
            continue
        for n in sorted(names):
            base, dot, ext = n.rpartition(".")
            if not dot or ext not in ("dist-info", "egg-info"):
                continue
            dist = base.split("-", 1)[0]
            if dist.lower().replace("_", "-").replace(".", "-") != name:
                continue
            meta = os.path.join(entry or ".", n, "METADATA" if ext == "dist-info" else "PKG-INFO")
            ver = _metadata_version(meta)
            if ver:
                return ver
    return ""


def _git_dir(top: Path) -> Path | None:
    dot = top / ".git"
    if dot.is_dir():
        return dot
    try:
        text = dot.read_text().strip()
    except OSError:
        return None
    if text.startswith("gitdir: "):
        p = Path(text[8:])
        return p if p.is_absolute() else (top / p).resolve()
    return None


def _read_ref(gitdir: Path, ref: str) -> str:
    """The commit a ref names, looked up in the worktree's dir, then in the common dir."""
    dirs = [gitdir]
    try:
        common = (gitdir / "commondir").read_text().strip()
        dirs.append((gitdir / common).resolve())
    except OSError:
        pass
    for d in dirs:
        try:
            return (d / ref).read_text().strip()
        except OSError:
            pass
        try:
            for line in (d / "packed-refs").read_text().splitlines():
                if line.endswith(" " + ref):
                    return line.split()[0]
        except OSError:
            pass
    return ""


def git_commit(top: Path) -> str:
    gitdir = _git_dir(top)
    if gitdir is None:
        return ""
    try:
        head = (gitdir / "HEAD").read_text().strip()
    except OSError:
        return ""
    return _read_ref(gitdir, head[5:]) if head.startswith("ref: ") else head


def version_info() -> dict[str, str]:
    """{"GitCommit","Version","BuildTime"} of this contivpy."""
    from datetime import UTC, datetime

    pkg = Path(__file__).resolve().parents[1]  # contivpy/
    commit = git_commit(pkg.parent)
    ver = installed_version() or FALLBACK_VERSION
    built = datetime.fromtimestamp(pkg.joinpath("__init__.py").stat().st_mtime, UTC)
    return {
        "GitCommit": commit,
        "Version": f"{ver}-contivpy" + (f"-{commit[:7]}" if commit else ""),
        "BuildTime": built.strftime("%m-%d-%Y.%H-%M-%S.UTC"),
    }


def version_text() -> str:
    """The block both daemons print for ``--version`` (the original's layout)."""
    v = version_info()
    return f"Version: {v['Version']}\nGitCommit: {v['GitCommit']}\nBuildTime: {v['BuildTime']}\n"
