"""Kubernetes mode: a pod without io.contiv.net-group joins its namespace's group k8s-<ns>, the group
netmaster's namespace watcher makes (netmaster/k8snet), so NetworkPolicies reach it. In-memory store."""

from __future__ import annotations

from contivpy.common.kv.memory import MemoryKV
from contivpy.model import keys
from contivpy.model.state import EndpointGroupState, NetworkState
from contivpy.netmaster.k8snet import translate
from contivpy.netplugin.cni import pods


async def _store() -> MemoryKV:
    kv = MemoryKV()
    await kv.put(keys.obj_key("tenant", "default"), '{"key":"default","tenantName":"default"}')
    net = NetworkState(networkName="default-net", tenant="default")
    await kv.put(keys.net_state(keys.network_id("default-net", "default")), net.to_json())
    grp = EndpointGroupState(groupName="k8s-web", tenantName="default", networkName="default-net")
    await kv.put(keys.epg_state(keys.epg_id("k8s-web", "default")), grp.to_json())
    return kv


def test_prefix_is_the_translators():
    assert pods.NAMESPACE_GROUP_PREFIX == translate.GROUP_PREFIX


async def test_pod_joins_its_namespace_group_in_kubernetes_mode():
    kv = await _store()
    svc = pods.PodService(kv, "h1", backend=None, namespace_groups=True)
    net, _ = await svc._resolve({}, "web")
    assert net.group == "k8s-web"
    net, _ = await svc._resolve({pods.LABEL_GROUP: ""}, "other")  # no such group (yet): no group
    assert net.group == ""


async def test_explicit_label_and_other_modes_are_unchanged():
    kv = await _store()
    await kv.put(
        keys.epg_state(keys.epg_id("db", "default")),
        EndpointGroupState(groupName="db", tenantName="default", networkName="default-net").to_json(),
    )
    k8s = pods.PodService(kv, "h1", backend=None, namespace_groups=True)
    assert (await k8s._resolve({pods.LABEL_GROUP: "db"}, "web"))[0].group == "db"
    docker = pods.PodService(kv, "h1", backend=None, namespace_groups=False)
    assert (await docker._resolve({}, "web"))[0].group == ""
