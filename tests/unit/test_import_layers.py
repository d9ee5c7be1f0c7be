"""The import direction of docs/architecture.md, checked on the source (no imports executed).

- netctl imports only the standard library and itself (its start-up time is a user-visible figure);
  so does contivk8s, the CNI plugin (it starts for every pod).
- ofnet imports only contivpy.common (no etcd, no model); netmaster and netplugin never import each
  other (they talk through etcd keys and HTTP); nothing imports netctl.
- common imports only common and the leaf module model.keys (pure key builders, no imports).
- Each third-party client lives in its adapter: grpc and protobuf only in netplugin/gobgp (the
  gobgpd adapter, loaded only once a Bgp config applies) and the optional aetcd fallback
  common/kv/etcd_grpc.py; etcd is spoken by our own JSON-gateway client, common/kv/etcdhttp.py,
  so by default no daemon loads grpc), pyroute2 in
  netplugin/links.py, prometheus_client in common/metrics.py.  OpenFlow and packet codecs are our
  own (ofnet/codec.py, ofnet/packets.py): os_ken (or ryu) is imported nowhere.
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
    "aetcd": ("common/kv/etcd_grpc.py",),  # the optional fallback client (CONTIVPY_ETCD_CLIENT=grpc)
    "grpc": ("netplugin/gobgp/", "common/kv/etcd_grpc.py"),
    "google": ("netplugin/gobgp/",),  # protobuf
    "pyroute2": ("netplugin/links.py",),
    "os_ken": (),  # not a dependency any more: our own codec (docs/decisions.md)
    "ryu": (),
    "prometheus_client": ("common/metrics.py",),
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


def test_daemons_load_no_grpc_without_bgp():
    """Both daemons' modules, an etcd store and an agent's BgpManager without a Bgp config load
    neither grpc nor protobuf (about 11 MiB of RSS and 30 ms of start-up: docs/benchmarks.md)."""
    import subprocess

    code = """
import asyncio, sys
from types import SimpleNamespace
import contivpy.netmaster.__main__, contivpy.netmaster.daemon
import contivpy.netplugin.__main__, contivpy.netplugin.daemon
from contivpy.common.kv import open_store
from contivpy.netplugin.fakedatapath import FakeDatapath
from contivpy.netplugin.managers.bgp import BgpManager

async def main():
    store = open_store("http://127.0.0.1:1")
    mgr = BgpManager(SimpleNamespace(host="h1", fwdmode="bridge", gobgp_dir="/nonexistent"), FakeDatapath())
    mgr.set_fwd_mode("routing")
    await mgr.reconcile("bgp")  # no Bgp config for this host: nothing to run
    mgr.inspect()
    await mgr.close()
    await store.close()

asyncio.run(main())
print(sorted({m.split(".")[0] for m in sys.modules} & {"grpc", "google", "aetcd"}))
"""
    import os

    env = {k: v for k, v in os.environ.items() if k != "CONTIVPY_ETCD_CLIENT"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=PKG.parent,
        check=True,
        timeout=60,
        env=env,
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


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


def test_hooks_never_import_crud():
    """The write path reads one way (route -> Crud -> hook): hooks see only netmaster/txn.py."""
    bad = []
    for rel, _pkg, names in _files():
        if rel.startswith("netmaster/hooks/") or rel == "netmaster/txn.py":
            # txn.py names Crud for type checking only (under TYPE_CHECKING)
            hits = {n for n in names if n.startswith("contivpy.netmaster.crud")}
            if rel == "netmaster/txn.py":
                src = (PKG / rel).read_text()
                assert "if TYPE_CHECKING:" in src, "txn.py may name Crud only under TYPE_CHECKING"
                continue
            bad += [f"{rel} imports {n}" for n in sorted(hits)]
    assert not bad, "\n".join(bad)


def test_hooks_modules_are_loaded_by_plain_imports():
    """Every hooks module named in the registry is reachable through hooks.load (no importlib)."""
    from contivpy.netmaster import hooks, registry

    names = {t.hooks for t in registry.TYPES.values() if t.hooks}
    assert len(names) >= 12, names
    src = (PKG / "netmaster" / "hooks" / "__init__.py").read_text()
    assert "importlib" not in src
    for name in names:
        assert hooks.load(name) is not None, name
    assert hooks.load("no-such-type") is None


def test_kubernetes_api_is_spoken_only_by_its_adapter():
    """common/k8sapi.py is the one module that knows the Kubernetes API's paths and protocol."""
    bad = [
        rel
        for rel, _pkg, _names in _files()
        if rel != "common/k8sapi.py"
        and any(
            s in (PKG / rel).read_text()
            for s in ("/api/v1/namespaces", "networking.k8s.io", "kubernetes_asyncio")
        )
    ]
    assert bad == []
