"""Stateful fuzz of address management through a real netmaster (real etcd), prefix fzi.

Each example builds one tenant with two networks (random subnet, range or not, gateway or not,
vlan or vxlan) and groups with and without ip-pools, then runs a random sequence of
/plugin/allocAddress (plain, group, preferred), /plugin/releaseAddress, /plugin/createEndpoint
(free, claimed, taken, reserved, foreign-group and out-of-pool addresses), /plugin/deleteEndpoint,
service create / update / delete with and without a VIP, and group delete / re-create (which leaves
stale allocation records behind). Addresses handed out are remembered so that later steps claim,
release or collide with them. The netmaster runs with a short allocation TTL so that the leader's
reclaimer frees unclaimed addresses concurrently with the requests.

After every step the whole store must be consistent (tests/support/consistency.py): every set bit
of every network and pool bitmap explained by exactly one reservation, endpoint, VIP or allocation
record. Budget: ``FUZZ_SCALE`` (conftest.py).
"""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from tests.fuzz import strategies as S
from tests.fuzz.conftest import NmClient, fuzz_settings, scaled, timeout
from tests.fuzz.test_fuzz_model import cleanup
from tests.support import consistency

pytestmark = pytest.mark.etcd

_EXAMPLE = itertools.count(1)
SUBNETS = {  # network -> candidate subnets (n1 and n2 never overlap: same tenant)
    "n1": ["10.1.0.0/24", "10.1.0.0/28", "10.1.0.0/29", "10.1.0.2-10.1.0.12/24", "10.1.0.0/30"],
    "n2": ["10.2.0.0/24", "10.2.0.0/28", "10.2.0.10-10.2.0.20/24"],
}
POOLS = {"n1": ["10.1.0.4-10.1.0.6", "10.1.0.10-10.1.0.11", "10.1.0.1-10.1.0.2"],
         "n2": ["10.2.0.11-10.2.0.13", "10.2.0.3-10.2.0.5"]}  # fmt: skip
ADDRS = [f"10.1.0.{d}" for d in range(0, 16)] + [f"10.2.0.{d}" for d in (0, 1, 3, 4, 10, 11, 12, 13, 20, 255)]
V6_ADDRS = ["2001:db8:1::1", "2001:db8:1::2", "2001:db8:1::3", "2001:db8:1::ff", "2001:db8:2::1", "::"]
GROUPS = {"g1": "n1", "g2": "n1", "g3": "n2"}  # g1 and g3 may have pools, g2 never


class IpamMachine(RuleBasedStateMachine):
    client: NmClient | None = None

    def __init__(self) -> None:
        super().__init__()
        self.t = f"fzi{next(_EXAMPLE)}"
        self.handed: list[tuple[str, str]] = []  # (NetworkID, address) from allocAddress
        self.steps: list[str] = []

    def _log(self, what: str, body, status: int, reply) -> None:
        self.steps.append(f"{what} {json.dumps(body)[:220]} -> {status} {str(reply)[:160].strip()}")

    def _plugin(self, route: str, body) -> tuple[int, object]:
        status, reply = self.client.plugin(route, body)
        self._log(f"/plugin/{route}", body, status, reply)
        return status, reply

    def _put(self, plural: str, key: str, body) -> int:
        status, text = self.client.put(plural, key, body)
        self._log(f"POST {plural}/{key}", body, status, text)
        return status

    def _delete(self, plural: str, key: str) -> int:
        status, text = self.client.delete(plural, key)
        self._log(f"DELETE {plural}/{key}", "", status, text)
        return status

    def _group_body(self, g: str, pool: str) -> dict:
        body = {"tenantName": self.t, "groupName": g, "networkName": GROUPS[g]}
        if pool:
            body["ipPool"] = pool
        return body

    @initialize(data=st.data())
    def topology(self, data):
        assert self._put("tenants", self.t, {"tenantName": self.t}) == 200
        for net, subnets in SUBNETS.items():
            subnet = data.draw(st.sampled_from(subnets), label=f"{net} subnet")
            body = {"tenantName": self.t, "networkName": net, "subnet": subnet,
                    "encap": data.draw(st.sampled_from(["vlan", "vxlan"]))}  # fmt: skip
            gw = data.draw(st.sampled_from(["", *S.addrs_in(subnet)[:6]]), label=f"{net} gateway")
            if gw:
                body["gateway"] = gw
            if net == "n1" and data.draw(st.booleans()):
                body["ipv6Subnet"] = data.draw(st.sampled_from(["2001:db8:1::/64", "2001:db8:1::/126"]))
                if data.draw(st.booleans()):
                    body["ipv6Gateway"] = "2001:db8:1::1"
            self._put("networks", f"{self.t}:{net}", body)
        for g, net in GROUPS.items():
            pool = "" if g == "g2" else data.draw(st.sampled_from(["", *POOLS[net]]), label=f"{g} pool")
            self._put("endpointGroups", f"{self.t}:{g}", self._group_body(g, pool))

    # --- address rules --------------------------------------------------------------------------
    def _network_id(self, data) -> str:
        g = data.draw(st.sampled_from(["", "", *GROUPS]))
        net = GROUPS[g] if g and data.draw(st.integers(0, 5)) else data.draw(st.sampled_from(["n1", "n2"]))
        return f"{net}:{g}.{self.t}" if g else f"{net}.{self.t}"

    @rule(data=st.data())
    def alloc(self, data):
        body = {"NetworkID": self._network_id(data)}
        if data.draw(st.booleans()):
            body["PreferredIPv4Address"] = data.draw(st.sampled_from(ADDRS))
        status, reply = self._plugin("allocAddress", body)
        if status == 200:
            self.handed.append((body["NetworkID"], reply["IPv4Address"].split("/")[0]))

    @rule(data=st.data())
    def release(self, data):
        if self.handed and data.draw(st.integers(0, 3)):
            nid, ip = data.draw(st.sampled_from(self.handed))
            if data.draw(st.integers(0, 4)) == 0:
                nid = self._network_id(data)  # released through another id of the network
        else:
            nid, ip = self._network_id(data), data.draw(st.sampled_from(ADDRS))
        self._plugin(
            "releaseAddress", {"NetworkID": nid, "IPv4Address": ip + data.draw(st.sampled_from(["", "/24"]))}
        )

    @rule(data=st.data())
    def create_endpoint(self, data):
        group = data.draw(st.sampled_from(["", "", *GROUPS]))
        net = (
            GROUPS[group]
            if group and data.draw(st.integers(0, 4))
            else data.draw(st.sampled_from(["n1", "n2"]))
        )
        ip = ""
        choice = data.draw(st.integers(0, 3))
        if choice == 1 and self.handed:
            ip = data.draw(st.sampled_from(self.handed))[1]
        elif choice == 2:
            ip = data.draw(st.sampled_from(ADDRS))
        cont = data.draw(st.sampled_from(["", *S.CONTAINERS]))
        ip6 = data.draw(st.sampled_from(["", "", "", *V6_ADDRS]))
        body = {"TenantName": self.t, "NetworkName": net, "ServiceName": group, "EndpointID": cont,
                "ConfigEP": {"Container": cont, "Host": data.draw(st.sampled_from(S.HOSTS)), "IPAddress": ip,
                             "IPv6Address": ip6, "ServiceName": group}}  # fmt: skip
        self._plugin("createEndpoint", body)

    @rule(data=st.data())
    def delete_endpoint(self, data):
        body = {"TenantName": self.t, "NetworkName": data.draw(st.sampled_from(["n1", "n2"])),
                "EndpointID": data.draw(st.sampled_from(["", *S.CONTAINERS])),
                "Host": data.draw(st.sampled_from(S.HOSTS))}  # fmt: skip
        self._plugin("deleteEndpoint", body)

    # --- objects that hold addresses ---------------------------------------------------------------
    @rule(data=st.data())
    def service(self, data):
        name = data.draw(st.sampled_from(S.SERVICE_NAMES))
        body = {"tenantName": self.t, "serviceName": name, "networkName": data.draw(st.sampled_from(["n1", "n2"])),
                "selectors": ["app=web"], "ports": ["80:8080:TCP"]}  # fmt: skip
        if data.draw(st.booleans()):
            body["ipAddress"] = data.draw(st.sampled_from(ADDRS))
        self._put("serviceLBs", f"{self.t}:{name}", body)

    @rule(data=st.data())
    def delete_service(self, data):
        self._delete("serviceLBs", f"{self.t}:{data.draw(st.sampled_from(S.SERVICE_NAMES))}")

    @rule(data=st.data())
    def recreate_group(self, data):
        g = data.draw(st.sampled_from(sorted(GROUPS)))
        if self._delete("endpointGroups", f"{self.t}:{g}") == 200 or data.draw(st.booleans()):
            pool = "" if g == "g2" else data.draw(st.sampled_from(["", *POOLS[GROUPS[g]]]))
            self._put("endpointGroups", f"{self.t}:{g}", self._group_body(g, pool))

    @invariant()
    def consistent(self):
        self.client.alive()
        problems = consistency.check(self.client.snapshot())
        assert not problems, "\n  ".join(
            ["inconsistent after:", *self.steps[-10:], "problems:", *problems[:30]]
        )

    def teardown(self):
        try:
            cleanup(self.client, [self.t], False)
        finally:
            self.steps.clear()


@pytest.fixture
def nm_short_ttl(netmaster_factory, etcd_server):
    nm = netmaster_factory(env={"CONTIV_NETMASTER_ALLOC_TTL": "2"})
    client = NmClient(nm, etcd_server)
    yield client
    client.alive()


@timeout(300)
@pytest.mark.parametrize("reclaim", [False, True], ids=["ttl3600", "ttl2"])
def test_fuzz_ipam_sequences(request, reclaim):
    client = request.getfixturevalue("nm_short_ttl" if reclaim else "nm_client")
    IpamMachine.client = client
    try:
        IpamMachine.TestCase.settings = fuzz_settings(6, steps=30)
        IpamMachine.TestCase().runTest()
    finally:
        IpamMachine.client = None
    print(
        f"ipam fuzz ({'reclaim' if reclaim else 'no reclaim'}): {client.calls} requests\n{client.summary()}"
    )
    client.assert_consistent("the ipam fuzz")
    client.assert_clean_log()


@timeout(300)
def test_fuzz_ipam_concurrent(nm_short_ttl):
    """Bounded random loop, 4 clients at once on one network with a pool group and a VIP, the
    reclaimer running (2 s TTL): allocate, release, create and delete endpoints, move the VIP,
    delete / re-create the group. Whatever the interleaving, the store stays consistent and every
    endpoint holds its own address. Seed printed; ``FUZZ_SEED`` fixes it."""
    import os
    import random
    import threading

    c = nm_short_ttl
    seed = int(os.environ.get("FUZZ_SEED") or random.randrange(1 << 30))
    print(f"concurrent ipam fuzz seed {seed}")
    t = "fzic"
    assert c.put("tenants", t, {"tenantName": t})[0] == 200
    net = {
        "tenantName": t,
        "networkName": "n1",
        "encap": "vxlan",
        "subnet": "10.1.0.0/27",
        "gateway": "10.1.0.1",
    }
    assert c.put("networks", f"{t}:n1", net)[0] == 200
    group = {"tenantName": t, "groupName": "g1", "networkName": "n1", "ipPool": "10.1.0.20-10.1.0.25"}
    assert c.put("endpointGroups", f"{t}:g1", group)[0] == 200
    addrs = [f"10.1.0.{d}" for d in range(0, 32)]
    errors: list[str] = []

    def worker(i: int) -> None:
        rnd = random.Random(seed + i)
        for _ in range(scaled(40)):
            op = rnd.randrange(7)
            try:
                if op == 0:
                    nid = rnd.choice([f"n1.{t}", f"n1:g1.{t}"])
                    body = {"NetworkID": nid}
                    if rnd.random() < 0.3:
                        body["PreferredIPv4Address"] = rnd.choice(addrs)
                    c.plugin("allocAddress", body)
                elif op == 1:
                    c.plugin("releaseAddress", {"NetworkID": rnd.choice([f"n1.{t}", f"n1:g1.{t}"]),
                                                "IPv4Address": rnd.choice(addrs)})  # fmt: skip
                elif op in (2, 3):
                    g = rnd.choice(["", "g1"])
                    ep = f"w{i}c{rnd.randrange(3)}"
                    ip = rnd.choice(["", "", rnd.choice(addrs)])
                    c.plugin("createEndpoint", {"TenantName": t, "NetworkName": "n1", "ServiceName": g,
                                                "EndpointID": ep, "ConfigEP": {"Container": ep, "Host": "h1",
                                                                               "IPAddress": ip, "ServiceName": g}})  # fmt: skip
                elif op == 4:
                    ep = f"w{rnd.randrange(4)}c{rnd.randrange(3)}"
                    c.plugin("deleteEndpoint", {"TenantName": t, "NetworkName": "n1", "EndpointID": ep})
                elif op == 5:
                    svc = {"tenantName": t, "serviceName": "s1", "networkName": "n1", "selectors": ["app=web"],
                           "ports": ["80:80:TCP"], "ipAddress": rnd.choice(["", *addrs[2:12]])}  # fmt: skip
                    c.put("serviceLBs", f"{t}:s1", svc) if rnd.random() < 0.7 else c.delete(
                        "serviceLBs", f"{t}:s1"
                    )
                else:
                    if c.delete("endpointGroups", f"{t}:g1")[0] == 200 or rnd.random() < 0.5:
                        c.put("endpointGroups", f"{t}:g1", group)
            except AssertionError as exc:  # hygiene or a dead daemon: report, stop this worker
                errors.append(f"worker {i}: {exc}")
                return

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    print(f"concurrent ipam fuzz: {c.calls} requests\n{c.summary()}")
    c.assert_consistent(f"the concurrent ipam fuzz (seed {seed})")
    cleanup(c, [t], False)
    c.assert_clean_log()
