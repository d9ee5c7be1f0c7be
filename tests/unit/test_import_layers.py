"""The import direction of docs/architecture.md, checked on the source (no imports executed).

- netctl imports only the standard library and itself (its start-up time is a user-visible figure);
  so does contivk8s, the CNI plugin (it starts for every pod).
- ofnet imports only contivpy.common (no etcd, no model); netmaster and netplugin never import each
  other (they talk through etcd keys and HTTP); nothing imports netctl.
- common imports only common and the leaf module model.keys (pure key builders, no imports).
- Each third-party client lives in its adapter: aetcd/grpc in common/kv, pyroute2 in
  netplugin/links.py, os_ken in ofnet (and the DNS reply builder netplugin/nameserver.py).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "contivpy"

ALLOWED_CONTIVPY = {
    "model": {"model", "common"},
    "common": {"common", "model.keys"},
    "ofnet": {"ofnet", "common"},
    "netmaster": {"netmaster", "model", "common"},
    "netplugin": {"netplugin", "ofnet", "model", "common"},
    "netctl": {"netctl"},
    "contivk8s": {"contivk8s"},
}
ADAPTERS = {
    "aetcd": ("common/kv/",),
    "grpc": ("common/kv/",),
    "pyroute2": ("netplugin/links.py",),
    "os_ken": ("ofnet/", "netplugin/nameserver.py"),
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # "from contivpy.model import keys" names contivpy.model.keys (a module or an attribute)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def _files():
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).as_posix()
        yield rel, rel.split("/")[0].removesuffix(".py"), _imports(path)


def _allowed(target: str, allowed: set[str]) -> bool:
    return any(target == a or target.startswith(a + ".") for a in allowed)


def test_contivpy_packages_import_in_one_direction():
    bad = []
    for rel, pkg, names in _files():
        if pkg == "__init__":
            continue
        for name in names:
            if name.startswith("contivpy."):
                target = name.removeprefix("contivpy.")
                if not _allowed(target, ALLOWED_CONTIVPY[pkg]):
                    bad.append(f"{rel} imports {name}")
    assert not bad, "\n".join(bad)


def test_third_party_clients_stay_in_their_adapters():
    bad = []
    for rel, _pkg, names in _files():
        for name in names:
            top = name.split(".")[0]
            if top in ADAPTERS and not rel.startswith(ADAPTERS[top]):
                bad.append(f"{rel} imports {name}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("cli", ["netctl", "contivk8s"])
def test_cli_imports_only_the_standard_library(cli):
    stdlib = set(sys.stdlib_module_names)
    bad = [
        f"{rel} imports {name}"
        for rel, pkg, names in _files()
        if pkg == cli
        for name in names
        if not name.startswith(f"contivpy.{cli}") and name.split(".")[0] not in stdlib | {"__future__"}
    ]
    assert not bad, "\n".join(bad)


def test_model_keys_is_a_leaf():
    names = _imports(PKG / "model" / "keys.py")
    assert names <= {"__future__.annotations"}, names
