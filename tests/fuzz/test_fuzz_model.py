"""Stateful fuzz of a real netmaster (real etcd): random sequences of REST writes on every collection
mixed with /plugin/* calls, with the whole store checked after EVERY step (prefix fz).

The machine (``ModelMachine``) draws names, subnets, pools and addresses from small pools
(strategies.py), so sequences collide: the same network created twice, overlapping subnets, a
group of another network in createEndpoint, a preferred address that a VIP, a pool, the gateway or
another endpoint holds, deletes of objects other objects link to, services moved between networks,
global range changes while networks hold tags. Fields are sometimes mutated (wrong types, huge /
unicode / empty strings, bad CIDRs).

After every step: every reply was a success or a clean error (no traceback, no Python wording, no
generic internal error), netmaster is alive, and tests/support/consistency.py finds nothing wrong in
all of /contiv.io. Teardown deletes everything the example made through the API (endpoints,
allocations, then objects children first): a state the API cannot clean up is a failure too.
Budget: ``FUZZ_SCALE`` (conftest.py).
"""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tests.fuzz import strategies as S
from tests.fuzz.conftest import fuzz_settings, timeout
from tests.support import consistency

pytestmark = pytest.mark.etcd

_EXAMPLE = itertools.count(1)
NET = st.sampled_from(["n1", "n1", "n1", *S.NET_NAMES])  # mostly the base topology's network
GROUP = st.sampled_from(["g1", "g1", *S.GROUP_NAMES])

DEFAULT_GLOBAL = {
    "arpMode": "proxy",
    "fwdMode": "bridge",
    "name": "global",
    "networkInfraType": "default",
    "pvtSubnet": "172.19.0.0/16",
    "vlans": "1-4094",
    "vxlans": "1-10000",
}

# deletion order of the teardown: children before parents
TEARDOWN_ORDER = [
    ("rule", "rules"),
    ("appProfile", "appProfiles"),
    ("serviceLB", "serviceLBs"),
    ("endpointGroup", "endpointGroups"),
    ("netprofile", "netprofiles"),
    ("policy", "policys"),
    ("network", "networks"),
    ("tenant", "tenants"),
]


class ModelMachine(RuleBasedStateMachine):
    client = None  # set by the test (one netmaster for all examples)
    restarts = 0

    def __init__(self) -> None:
        super().__init__()
        n = next(_EXAMPLE)
        self.tenants = [f"fz{n}a", f"fz{n}b"]
        self.global_touched = False
        self.restarted = False
        self.steps: list[str] = []

    # --- helpers -------------------------------------------------------------------------------
    def _put(self, plural: str, key, body) -> tuple[int, str]:
        key = key if isinstance(key, str) else json.dumps(key)
        status, text = self.client.put(plural, key, body)
        self.steps.append(f"POST {plural}/{key} {json.dumps(body)[:200]} -> {status} {text[:120].strip()}")
        return status, text

    def _delete(self, plural: str, key: str) -> tuple[int, str]:
        status, text = self.client.delete(plural, key)
        self.steps.append(f"DELETE {plural}/{key} -> {status} {text[:120].strip()}")
        return status, text

    def _plugin(self, route: str, body) -> tuple[int, object]:
        status, reply = self.client.plugin(route, body)
        self.steps.append(f"/plugin/{route} {json.dumps(body)[:200]} -> {status} {str(reply)[:120].strip()}")
        return status, reply

    # --- setup ---------------------------------------------------------------------------------
    @initialize(data=st.data())
    def base_topology(self, data):
        """Tenants, and mostly a valid network (vlan or vxlan) with a group, a policy and a service
        in each: fertile ground for the random steps."""
        for i, t in enumerate(self.tenants):
            assert self._put("tenants", t, {"tenantName": t})[0] == 200
            if data.draw(st.integers(0, 4)) == 0:
                continue
            subnet = data.draw(st.sampled_from(S.subnets(i + 1)))
            body = {"tenantName": t, "networkName": "n1", "subnet": subnet,
                    "encap": data.draw(st.sampled_from(["vlan", "vxlan"]))}  # fmt: skip
            if data.draw(st.booleans()):
                body["gateway"] = data.draw(st.sampled_from(S.addrs_in(subnet)))
            if self._put("networks", f"{t}:n1", body)[0] != 200:
                continue
            group = {"tenantName": t, "groupName": "g1", "networkName": "n1"}
            if data.draw(st.booleans()):
                group["ipPool"] = data.draw(S.pool)
            self._put("endpointGroups", f"{t}:g1", group)
            self._put("policys", f"{t}:p1", {"tenantName": t, "policyName": "p1"})
            if data.draw(st.booleans()):
                self._put("serviceLBs", f"{t}:s1", {"tenantName": t, "serviceName": "s1", "networkName": "n1",
                                                   "selectors": ["app=web"], "ports": ["80:8080:TCP"]})  # fmt: skip

    # --- REST rules -----------------------------------------------------------------------------
    @rule(data=st.data())
    def tenant(self, data):
        name = data.draw(S.mutated(st.sampled_from(self.tenants + ["fzx"]), 6))
        self._put("tenants", name, {"tenantName": name})

    @rule(data=st.data())
    def network(self, data):
        t = data.draw(st.sampled_from(self.tenants))
        name = data.draw(NET)
        subnet = data.draw(st.one_of(S.subnet, S.subnet, S.subnet, st.sampled_from(S.BAD_SUBNETS)))
        body = {
            "tenantName": t,
            "networkName": name,
            "encap": data.draw(S.mutated(st.sampled_from(["vlan", "vxlan"]), 12)),
            "subnet": data.draw(S.mutated(st.just(subnet), 20)),
        }
        if data.draw(st.booleans()):
            body["gateway"] = data.draw(S.mutated(st.sampled_from(S.addrs_in(subnet)), 16))
        if data.draw(st.integers(0, 3)) == 0:
            body["pktTag"] = data.draw(
                S.mutated(st.sampled_from([0, 1, 100, 4094, 4095, 10000, 10001, 16777216]), 12)
            )
        if data.draw(st.integers(0, 4)) == 0:
            body["ipv6Subnet"] = data.draw(
                st.sampled_from(["2001:db8:1::/64", "2001:db8::/48", "2001:db8:1::/120"])
            )
            if data.draw(st.booleans()):
                body["ipv6Gateway"] = data.draw(st.sampled_from(["2001:db8:1::1", "2001:db8:2::1"]))
        if data.draw(st.integers(0, 5)) == 0:
            body["nwType"] = data.draw(S.mutated(st.sampled_from(["infra", "data"]), 12))
        key = f"{t}:{name}" if data.draw(st.integers(0, 9)) else data.draw(S.mutated(st.just(f"{t}:n9"), 12))
        self._put("networks", key, body)

    @rule(data=st.data())
    def group(self, data):
        t = data.draw(st.sampled_from(self.tenants))
        name = data.draw(st.sampled_from(S.GROUP_NAMES + S.NET_NAMES[:1]))
        body = {"tenantName": t, "groupName": name, "networkName": data.draw(NET)}
        if data.draw(st.booleans()):
            body["ipPool"] = data.draw(S.mutated(S.pool, 16))
        if data.draw(st.booleans()):
            body["policies"] = data.draw(
                st.one_of(st.lists(st.sampled_from(S.POLICY_NAMES + ["p9"]), max_size=3), S.wrong_types)
            )
        if data.draw(st.integers(0, 2)) == 0:
            body["netProfile"] = data.draw(S.mutated(st.sampled_from(S.PROFILE_NAMES + ["np9"]), 12))
        self._put("endpointGroups", f"{t}:{name}", body)

    @rule(data=st.data())
    def policy(self, data):
        t = data.draw(st.sampled_from(self.tenants))
        name = data.draw(S.mutated(st.sampled_from(S.POLICY_NAMES), 20))
        self._put("policys", f"{t}:{name}", {"tenantName": t, "policyName": name})

    @rule(data=st.data())
    def rule_(self, data):
        t = data.draw(st.sampled_from(self.tenants))
        pol = data.draw(st.sampled_from(S.POLICY_NAMES))
        rid = data.draw(st.sampled_from(S.RULE_IDS))
        direction = data.draw(S.mutated(st.sampled_from(["in", "out"]), 20))
        body = {"tenantName": t, "policyName": pol, "ruleId": rid, "direction": direction,
                "action": data.draw(S.mutated(st.sampled_from(["allow", "deny"]), 20)),
                "priority": data.draw(S.mutated(st.integers(1, 100), 20))}  # fmt: skip
        side = "from" if direction == "in" else "to"
        what = data.draw(st.sampled_from(["group", "network", "ip", "none"]))
        if what == "group":
            body[f"{side}EndpointGroup"] = data.draw(GROUP)
        elif what == "network":
            body[f"{side}Network"] = data.draw(NET)
        elif what == "ip":
            body[f"{side}IpAddress"] = data.draw(S.mutated(S.addr, 16))
        if data.draw(st.booleans()):
            body["protocol"] = data.draw(st.sampled_from(["tcp", "udp", "icmp", "17"]))
            body["port"] = data.draw(S.mutated(st.integers(0, 65535), 20))
        self._put("rules", f"{t}:{pol}:{rid}", body)

    @rule(data=st.data())
    def netprofile(self, data):
        t = data.draw(st.sampled_from(self.tenants))
        name = data.draw(S.mutated(st.sampled_from(S.PROFILE_NAMES), 20))
        body = {"tenantName": t, "profileName": name,
                "bandwidth": data.draw(S.mutated(st.sampled_from(["10mbps", "1gbps", "100kbps", ""]), 16)),
                "DSCP": data.draw(S.mutated(st.integers(0, 63), 20)),
                "burst": data.draw(S.mutated(st.sampled_from([0, 1, 2, 1500, 10486, 10487]), 16))}  # fmt: skip
        key = name if isinstance(name, str) else "x"
        self._put("netprofiles", f"{t}:{key}", body)

    @rule(data=st.data())
    def app_profile(self, data):
        t = data.draw(st.sampled_from(self.tenants))
        name = data.draw(st.sampled_from(S.APP_NAMES))
        groups = data.draw(st.one_of(st.lists(GROUP, max_size=3), S.wrong_types))
        self._put(
            "appProfiles", f"{t}:{name}", {"tenantName": t, "appProfileName": name, "endpointGroups": groups}
        )

    @rule(data=st.data())
    def service(self, data):
        t = data.draw(st.sampled_from(self.tenants))
        name = data.draw(st.sampled_from(S.SERVICE_NAMES))
        body = {"tenantName": t, "serviceName": name, "networkName": data.draw(NET),
                "selectors": data.draw(S.mutated(st.sampled_from([["app=web"], ["a=b", "c=d"], ["bad"]]), 12)),
                "ports": data.draw(S.mutated(st.sampled_from([["80:8080:TCP"], ["53:53:UDP", "1:2:TCP"],
                                                              ["x:y:z"]])))}  # fmt: skip
        if data.draw(st.booleans()):
            body["ipAddress"] = data.draw(S.mutated(S.addr, 16))
        self._put("serviceLBs", f"{t}:{name}", body)

    @rule(data=st.data())
    def global_(self, data):
        body = dict(DEFAULT_GLOBAL)
        field = data.draw(st.sampled_from(["vlans", "vxlans", "fwdMode", "arpMode", "pvtSubnet"]))
        body[field] = data.draw(
            S.mutated(st.sampled_from({
                "vlans": ["1-4094", "100-200", "1-50", "5-4000"],
                "vxlans": ["1-10000", "1-100", "5000-6000", "1-20000"],
                "fwdMode": ["bridge", "routing"],
                "arpMode": ["proxy", "flood"],
                "pvtSubnet": ["172.19.0.0/16", "172.20.0.0/16"],
            }[field]), 8)
        )  # fmt: skip
        self.global_touched = True
        if data.draw(st.integers(0, 7)) == 0:  # delete and re-create the global object
            self._delete("globals", "global")
        self._put("globals", "global", body)

    @rule(data=st.data())
    def delete(self, data):
        t = data.draw(st.sampled_from(self.tenants))
        plural, key = data.draw(
            st.sampled_from([
                ("tenants", t),
                *[("networks", f"{t}:{n}") for n in S.NET_NAMES],
                *[("endpointGroups", f"{t}:{g}") for g in S.GROUP_NAMES],
                *[("policys", f"{t}:{p}") for p in S.POLICY_NAMES],
                *[("rules", f"{t}:{p}:{r}") for p in S.POLICY_NAMES for r in S.RULE_IDS],
                *[("netprofiles", f"{t}:{p}") for p in S.PROFILE_NAMES],
                *[("appProfiles", f"{t}:{a}") for a in S.APP_NAMES],
                *[("serviceLBs", f"{t}:{s}") for s in S.SERVICE_NAMES],
            ])
        )  # fmt: skip
        self._delete(plural, key)

    # --- /plugin/* rules -------------------------------------------------------------------------
    def _net_id(self, data) -> str:
        t = data.draw(st.sampled_from(self.tenants))
        n = data.draw(NET)
        form = data.draw(st.integers(0, 5))
        if form == 0:
            return f"{n}:{data.draw(GROUP)}.{t}"
        if form == 1:
            return data.draw(S.weird_text)
        return f"{n}.{t}"

    @rule(data=st.data())
    def alloc_address(self, data):
        body = {"NetworkID": self._net_id(data)}
        if data.draw(st.booleans()):
            body["PreferredIPv4Address"] = data.draw(S.mutated(S.addr, 16))
        if data.draw(st.integers(0, 5)) == 0:
            body["AddressPool"] = data.draw(S.mutated(S.subnet, 12))
        self._plugin("allocAddress", body)

    @rule(data=st.data())
    def release_address(self, data):
        addr = data.draw(S.mutated(S.addr, 20))
        if isinstance(addr, str) and data.draw(st.booleans()):
            addr += data.draw(st.sampled_from(["/24", "/16", "/8"]))
        self._plugin("releaseAddress", {"NetworkID": self._net_id(data), "IPv4Address": addr})

    @rule(data=st.data())
    def create_endpoint(self, data):
        t = data.draw(st.sampled_from(self.tenants))
        n = data.draw(S.mutated(NET, 24))
        group = data.draw(st.sampled_from(["", "", *S.GROUP_NAMES]))
        container = data.draw(st.sampled_from(["", *S.CONTAINERS]))
        cfg = {"Container": container, "Host": data.draw(S.mutated(st.sampled_from(S.HOSTS), 20)),
               "IPAddress": data.draw(st.one_of(st.just(""), S.mutated(S.addr, 16))),
               "ServiceName": group}  # fmt: skip
        if data.draw(st.integers(0, 4)) == 0:
            cfg["IPv6Address"] = data.draw(
                st.sampled_from(["2001:db8:1::5", "2001:db8:1::1", "2001:db9::1", "x"])
            )
        body = {"TenantName": t, "NetworkName": n, "ServiceName": group,
                "EndpointID": data.draw(st.sampled_from(["", container, *S.CONTAINERS])),
                "ConfigEP": cfg}  # fmt: skip
        self._plugin("createEndpoint", body)

    @rule(data=st.data())
    def delete_endpoint(self, data):
        t = data.draw(st.sampled_from(self.tenants))
        body = {"TenantName": t, "NetworkName": data.draw(S.mutated(NET, 24)),
                "EndpointID": data.draw(st.sampled_from(["", *S.CONTAINERS])),
                "Host": data.draw(st.sampled_from(S.HOSTS))}  # fmt: skip
        self._plugin("deleteEndpoint", body)

    @rule(data=st.data())
    def update_endpoint(self, data):
        t = data.draw(st.sampled_from(self.tenants))
        n = data.draw(NET)
        body = {"EndpointID": f"{n}.{t}-{data.draw(st.sampled_from(S.CONTAINERS))}",
                "ContainerID": data.draw(S.mutated(st.sampled_from(["cid1", "cid2"]), 12)),
                "EPCommonName": data.draw(S.mutated(st.sampled_from(["web1", "db1"]), 12)),
                "Event": data.draw(S.mutated(st.sampled_from(["start", "die"]), 20)),
                "Labels": data.draw(S.mutated(st.sampled_from([{"app": "web"}, {}, {"a": "b"}]), 12)),
                "Tenant": t, "Network": n,
                "IPAddress": data.draw(S.mutated(S.addr, 12))}  # fmt: skip
        self._plugin("updateEndpoint", body)

    @precondition(lambda self: not self.restarted)
    @rule()
    def restart_netmaster(self):
        """A graceful netmaster restart (once per example): the new leader's start-up (defaults,
        pending follow-up jobs) must keep the store as it was."""
        self.restarted = True
        ModelMachine.restarts += 1
        before = self.client.snapshot()
        nm = self.client.nm
        nm.stop()
        nm.start()
        nm.wait_ready()
        self.steps.append("netmaster restarted")
        after = self.client.snapshot()
        changed = sorted(k for k in set(before) | set(after)
                         if before.get(k) != after.get(k) and "/lock/" not in k and "/service/" not in k)  # fmt: skip
        assert not changed, f"a netmaster restart changed the store: {changed[:10]}"

    # --- checks ------------------------------------------------------------------------------------
    @invariant()
    def consistent(self):
        self.client.alive()
        problems = consistency.check(self.client.snapshot())
        assert not problems, "\n  ".join(
            ["inconsistent after:", *self.steps[-8:], "problems:", *problems[:30]]
        )

    def teardown(self):
        try:
            cleanup(self.client, self.tenants, self.global_touched)
        finally:
            self.steps.clear()


def cleanup(client, tenants: list[str], restore_global: bool) -> None:
    """Delete through the API everything of ``tenants``; fail if something cannot be removed."""
    suffixes = tuple(f".{t}" for t in tenants)
    snap = client.snapshot()
    for key, raw in snap.items():
        if key.startswith(consistency.EPS):
            ep = json.loads(raw)
            net_id = ep.get("netID", "")
            if not net_id.endswith(suffixes):
                continue
            net, _, tenant = net_id.rpartition(".")
            ident = ep["id"][len(net_id) + 1 :]
            body = {"TenantName": tenant, "NetworkName": net, "EndpointID": ident}
            host = ep.get("homingHost", "")
            if host and ident == f"{host}-native-intf":
                body = {"TenantName": tenant, "NetworkName": net, "Host": host}
            status, reply = client.plugin("deleteEndpoint", body)
            assert status == 200, (body, reply)
        elif key.startswith(consistency.ALLOC):
            rec = json.loads(raw)
            net_id = rec.get("networkId", "")
            if not net_id.endswith(suffixes):
                continue
            if rec.get("group"):
                net, _, tenant = net_id.rpartition(".")
                net_id = f"{net}:{rec['group']}.{tenant}"
            status, reply = client.plugin(
                "releaseAddress", {"NetworkID": net_id, "IPv4Address": rec["address"]}
            )
            assert status == 200, (net_id, rec, reply)
    for _ in range(3):
        snap = client.snapshot()
        left = []
        for otype, plural in TEARDOWN_ORDER:
            prefix = f"{consistency.OBJ}{otype}/"
            for key in sorted(k[len(prefix) :] for k in snap if k.startswith(prefix)):
                if key.split(":", 1)[0] in tenants:
                    status, text = client.delete(plural, key)
                    if status != 200:
                        left.append(f"{plural}/{key}: {text.strip()}")
        if not left:
            break
    assert not left, "the API could not clean up: " + "; ".join(left)
    if restore_global:
        status, text = client.put("globals", "global", DEFAULT_GLOBAL)
        assert status == 200, text
    snap = client.snapshot()
    # (the per-tenant provider generation counter outlives the tenant on purpose: it only grows)
    rest = [k for k in snap if any(t in k.split("/")[-1] for t in tenants) and "/svcProviderGen/" not in k]
    assert not rest, f"keys left after the API deleted everything: {rest[:10]}"
    consistency.assert_consistent(snap, context="cleanup")


@timeout(300)
def test_fuzz_model_sequences(nm_client):
    ModelMachine.client = nm_client
    try:
        ModelMachine.TestCase.settings = fuzz_settings(10, steps=25)
        ModelMachine.TestCase().runTest()
    finally:
        ModelMachine.client = None
    print(
        f"model fuzz: {nm_client.calls} requests, {ModelMachine.restarts} netmaster restarts\n{nm_client.summary()}"
    )
    nm_client.assert_consistent("the model fuzz")
    nm_client.assert_clean_log()
