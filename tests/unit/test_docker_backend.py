"""The agent's Docker backend reports the forwarding mode the agent applies now (the Join of a vlan
network without a gateway depends on it: tests/integration/test_docker_plugin_socket.py)."""

from __future__ import annotations

from types import SimpleNamespace

from contivpy.netplugin.docker_backend import AgentBackend


def test_routed_follows_a_live_forwarding_mode_switch():
    cfg = SimpleNamespace(fwdmode="bridge")
    backend = AgentBackend(SimpleNamespace(cfg=cfg))
    assert backend.routed() is False
    cfg.fwdmode = "routing"  # what the daemon's live switch does to the shared config
    assert backend.routed() is True
