"""Stateful fuzz of the Docker plugin socket of a REAL netplugin agent (own OVS in a netns, real
etcd, real netmaster: tests/fixtures/testbed.py with one host, no dockerd), prefix fzs.

Every plugin-socket method is called: random sequences of IpamDriver.RequestPool / RequestAddress /
ReleaseAddress / ReleasePool and NetworkDriver.CreateEndpoint / Join / Leave / EndpointOperInfo /
DeleteEndpoint on a plain network and on a group with an ip-pool (their Docker network ids come
from docknet records, as netmaster writes them in docker mode), plus every other method with
valid-ish or mutated bodies (wrong types, unknown network ids, malformed PoolIDs, odd addresses).

After every step: each reply is 200, a clean ``{"Err": ...}`` / ``{"Error": ...}`` 500 or the
404 text; no Python wording and no "internal error"; the agent and netmaster are alive; the whole
store is consistent. Teardown deletes the example's endpoints and releases its addresses through
the socket, as dockerd would: DeleteEndpoint leaves the address allocated, its ReleaseAddress
frees it (nothing may be left). Needs root and OVS (the test bed); budget ``FUZZ_SCALE``.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import time

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from tests.fuzz import strategies as S
from tests.fuzz.conftest import check_reply, fuzz_settings, log_problems, timeout
from tests.support import consistency

pytestmark = [pytest.mark.root, pytest.mark.ovs, pytest.mark.etcd]

NETID = "f2" * 32  # Docker network id of network fzsnet
GRPID = "f3" * 32  # Docker network id of group fzsg (ip-pool)
POOL_NET = "fzsnet.default|10.31.0.0/24"
POOL_GRP = "fzsnet:fzsg.default|10.31.0.0/24"
ADDRS = ["10.31.0.1", "10.31.0.2", "10.31.0.3", "10.31.0.254", "10.31.0.0", "10.31.0.255", "10.31.0.100",
         "10.31.0.101", "10.31.0.105", "10.31.1.1", "2001:db8::1", "x"]  # fmt: skip
ENDPOINTS = ["e1" * 32, "e2" * 32, "e3" * 32]
OTHER_METHODS = [
    "Plugin.Activate", "Plugin.Deactivate", "NetworkDriver.GetCapabilities", "NetworkDriver.CreateNetwork",
    "NetworkDriver.AllocateNetwork", "NetworkDriver.FreeNetwork", "NetworkDriver.DiscoverNew",
    "NetworkDriver.DiscoverDelete", "NetworkDriver.ProgramExternalConnectivity",
    "NetworkDriver.RevokeExternalConnectivity", "IpamDriver.GetCapabilities",
    "IpamDriver.GetDefaultAddressSpaces", "IpamDriver.ReleasePool", "NetworkDriver.Bogus",
]  # fmt: skip


class _UnixConn(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("docker", timeout=60)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(60)
        self.sock.connect(self._path)


class Agent:
    def __init__(self, bed, host) -> None:
        self.bed, self.host = bed, host
        self.calls = 0
        self.tally: dict[str, int] = {}
        self.errors: dict[str, int] = {}

    def alive(self) -> None:
        p = self.host.netplugin
        assert p is not None and p.poll() is None, f"netplugin died: {self.host.log_tail(60)}"
        assert self.bed.netmaster_proc.poll() is None, "netmaster died"

    def call(self, method: str, body) -> tuple[int, object]:
        self.calls += 1
        c = _UnixConn(self.host.plugin_socket)
        try:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            c.request(
                "POST", f"/{method}", data, {"Content-Type": "application/vnd.docker.plugins.v1.2+json"}
            )
            r = c.getresponse()
            raw = r.read().decode()
        except OSError as exc:
            self.alive()
            raise AssertionError(f"{method}: no reply ({exc})") from exc
        finally:
            c.close()
        check_reply(f"socket {method}", r.status, raw)
        try:
            reply = json.loads(raw)
        except ValueError:
            reply = raw
        if r.status == 500:
            assert isinstance(reply, dict) and set(reply) <= {"Err", "Error"} and any(reply.values()), (
                method,
                raw,
            )
        elif r.status == 404:
            assert raw == "404 page not found\n", (method, raw)
        else:
            assert r.status == 200 and isinstance(reply, dict), (method, r.status, raw)
        key = f"{method} {r.status}"
        self.tally[key] = self.tally.get(key, 0) + 1
        if r.status == 500:
            err = f"{method}: {re.sub(r'[0-9a-f]{16,}|[0-9]+', 'N', str(next(iter(reply.values()))))[:90]}"
            self.errors[err] = self.errors.get(err, 0) + 1
        return r.status, reply

    def snapshot(self) -> consistency.Snapshot:
        return consistency.load_etcdctl(self.bed.etcdctl)


class SocketMachine(RuleBasedStateMachine):
    agent: Agent | None = None

    def __init__(self) -> None:
        super().__init__()
        self.handed: list[tuple[str, str]] = []  # (PoolID, address)
        self.steps: list[str] = []

    def _call(self, method: str, body) -> tuple[int, object]:
        status, reply = self.agent.call(method, body)
        self.steps.append(
            f"{method} {json.dumps(body)[:200] if not isinstance(body, bytes) else body!r} -> {status} {str(reply)[:140]}"
        )
        return status, reply

    @rule(data=st.data())
    def container_lifecycle(self, data):
        """What dockerd does for ``docker run`` (and, sometimes, ``docker rm``), in order, with an
        occasional mutated field: RequestAddress, CreateEndpoint, Join, EndpointOperInfo."""
        grp = data.draw(st.booleans())
        pool, nid = (POOL_GRP, GRPID) if grp else (POOL_NET, NETID)
        ep = data.draw(st.sampled_from(ENDPOINTS))
        want = data.draw(st.sampled_from(["", "", "10.31.0.7", "10.31.0.102", "10.31.0.254"]))
        status, reply = self._call(
            "IpamDriver.RequestAddress", {"PoolID": pool, "Address": want, "Options": None}
        )
        if status != 200:
            return
        addr = reply["Address"]
        self.handed.append((pool, addr.split("/")[0]))
        iface = {"Address": addr, "AddressIPv6": "", "MacAddress": ""}
        body = {"NetworkID": nid, "EndpointID": ep, "Interface": data.draw(S.mutated(st.just(iface), 20)),
                "Options": {}}  # fmt: skip
        status, _ = self._call("NetworkDriver.CreateEndpoint", body)
        if status != 200:
            self._call("IpamDriver.ReleaseAddress", {"PoolID": pool, "Address": addr.split("/")[0]})
            return
        join = {"NetworkID": nid, "EndpointID": ep, "SandboxKey": "/var/run/docker/netns/fzs", "Options": {}}
        self._call("NetworkDriver.Join", join)
        self._call("NetworkDriver.EndpointOperInfo", {"NetworkID": nid, "EndpointID": ep})
        if data.draw(st.booleans()):
            for m in ("NetworkDriver.Leave", "NetworkDriver.DeleteEndpoint"):
                self._call(m, {"NetworkID": nid, "EndpointID": ep})
            self._call("IpamDriver.ReleaseAddress", {"PoolID": pool, "Address": addr.split("/")[0]})

    @rule(data=st.data())
    def request_pool(self, data):
        opts = data.draw(st.sampled_from([
            {"network": "fzsnet", "tenant": "default"}, {"network": "fzsnet", "tenant": "default", "group": "fzsg"},
            {"network": "nosuch", "tenant": "default"}, {}, {"contiv-tag": "fzsg.default"},
        ]))  # fmt: skip
        body = {"AddressSpace": "GlobalDefault", "Pool": data.draw(S.mutated(st.sampled_from(["10.31.0.0/24", ""]), 8)),
                "SubPool": "", "Options": data.draw(S.mutated(st.just(opts), 8)), "V6": data.draw(S.mutated(st.just(False), 10))}  # fmt: skip
        self._call("IpamDriver.RequestPool", body)

    @rule(data=st.data())
    def request_address(self, data):
        pool = data.draw(
            S.mutated(
                st.sampled_from([POOL_NET, POOL_NET, POOL_GRP, "nosuch.default|10.9.0.0/24", "x|y"]), 10
            )
        )
        addr = data.draw(st.one_of(st.just(""), st.just(""), S.mutated(st.sampled_from(ADDRS), 8)))
        opts = data.draw(st.sampled_from([None, {}, {"RequestAddressType": "com.docker.network.gateway"}]))
        status, reply = self._call(
            "IpamDriver.RequestAddress", {"PoolID": pool, "Address": addr, "Options": opts}
        )
        if status == 200 and isinstance(pool, str) and not (opts or {}).get("RequestAddressType"):
            self.handed.append((pool, reply["Address"].split("/")[0]))

    @rule(data=st.data())
    def release_address(self, data):
        if self.handed and data.draw(st.integers(0, 3)):
            pool, addr = data.draw(st.sampled_from(self.handed))
        else:
            pool = data.draw(st.sampled_from([POOL_NET, POOL_GRP, "bad"]))
            addr = data.draw(S.mutated(st.sampled_from(ADDRS), 8))
        self._call("IpamDriver.ReleaseAddress", {"PoolID": pool, "Address": addr})

    @rule(data=st.data())
    def create_endpoint(self, data):
        addr = ""
        if self.handed and data.draw(st.integers(0, 3)):
            addr = data.draw(st.sampled_from(self.handed))[1] + "/24"
        elif data.draw(st.booleans()):
            addr = data.draw(S.mutated(st.sampled_from(ADDRS), 8))
        body = {"NetworkID": data.draw(S.mutated(st.sampled_from([NETID, NETID, GRPID, "nosuch"]), 10)),
                "EndpointID": data.draw(S.mutated(st.sampled_from(ENDPOINTS), 12)),
                "Interface": data.draw(S.mutated(st.just({"Address": addr, "AddressIPv6": "", "MacAddress": ""}), 10)),
                "Options": {}}  # fmt: skip
        self._call("NetworkDriver.CreateEndpoint", body)

    @rule(data=st.data(), method=st.sampled_from(["NetworkDriver.Join", "NetworkDriver.Leave",
                                                    "NetworkDriver.EndpointOperInfo", "NetworkDriver.DeleteEndpoint"]))  # fmt: skip
    def endpoint_call(self, data, method):
        body = {"NetworkID": data.draw(S.mutated(st.sampled_from([NETID, GRPID, "nosuch"]), 10)),
                "EndpointID": data.draw(S.mutated(st.sampled_from(ENDPOINTS), 12)),
                "SandboxKey": "/var/run/docker/netns/fzs", "Options": {}}  # fmt: skip
        held = self._endpoint_addresses() if method == "NetworkDriver.DeleteEndpoint" else {}
        self._call(method, body)
        self._owe_releases(held)

    def _endpoint_addresses(self) -> dict[str, tuple[str, str]]:
        """The example's endpoints in etcd: state key -> (PoolID, address) dockerd releases after
        deleting it (DeleteEndpoint keeps the address allocated until that ReleaseAddress)."""
        out = {}
        for key, value in self.agent.snapshot().items():
            if key.startswith(consistency.EPS + "fzsnet.default-"):
                ep = json.loads(value)
                if ep.get("ipAddress"):
                    out[key] = (POOL_GRP if ep.get("serviceName") else POOL_NET, ep["ipAddress"])
        return out

    def _owe_releases(self, before: dict[str, tuple[str, str]]) -> None:
        """Endpoints gone since ``before``: their addresses join ``handed`` (the teardown releases
        them as dockerd would)."""
        if before:
            now = self._endpoint_addresses()
            self.handed += [addr for key, addr in before.items() if key not in now]

    @rule(data=st.data())
    def other_method(self, data):
        method = data.draw(st.sampled_from(OTHER_METHODS + ["NetworkDriver.DeleteNetwork"]))
        body = data.draw(st.one_of(
            st.just({"NetworkID": NETID, "PoolID": POOL_NET, "Options": {}}),
            st.dictionaries(st.sampled_from(["NetworkID", "PoolID", "Options", "IPv4Data", "EndpointID"]),
                            S.mutated(st.sampled_from([NETID, POOL_NET, "x"]), 2), max_size=4),
            st.sampled_from([b"", b"[]", b"null", b"{", b"\xff\xfe"]),
        ))  # fmt: skip
        if (
            method == "NetworkDriver.DeleteNetwork"
            and isinstance(body, dict)
            and body.get("NetworkID") in (NETID, GRPID)
        ):
            body = dict(body, NetworkID="nosuch")  # (forgetting the real ids is fine, but slows the rest)
        self._call(method, body)

    @invariant()
    def consistent(self):
        self.agent.alive()
        problems = consistency.check(self.agent.snapshot())
        assert not problems, "\n  ".join(
            ["inconsistent after:", *self.steps[-8:], "problems:", *problems[:30]]
        )

    def teardown(self):
        try:
            held = self._endpoint_addresses()
            # (mutated EndpointIDs are valid strings too: whatever the example created goes)
            made = [
                json.loads(v).get("endpointID", "")
                for k, v in self.agent.snapshot().items()
                if k.startswith(consistency.EPS + "fzsnet.default-")
            ]
            for ep in dict.fromkeys(ENDPOINTS + [e for e in made if e]):
                for nid in (NETID, GRPID):
                    status, reply = self.agent.call(
                        "NetworkDriver.DeleteEndpoint", {"NetworkID": nid, "EndpointID": ep}
                    )
                    assert status == 200, (ep, reply)
            self._owe_releases(held)
            for pool, addr in self.handed:
                self.agent.call("IpamDriver.ReleaseAddress", {"PoolID": pool, "Address": addr})
            snap = self.agent.snapshot()
            left = [k for k in snap if k.startswith(consistency.EPS) or k.startswith(consistency.ALLOC)]
            assert not left, f"left after the example: {left}"
            consistency.assert_consistent(snap, context="socket fuzz teardown")
        finally:
            self.steps.clear()


@pytest.fixture(scope="module")
def agent():
    from tests.fixtures.docker import _wait_testbed_free
    from tests.fixtures.testbed import Testbed

    _wait_testbed_free()
    with Testbed(1) as bed:
        h = bed.hosts[1]
        h.start_netplugin()
        bed.netctl("network", "create", "--encap", "vlan", "--pkt-tag", "131", "--subnet", "10.31.0.0/24",
                   "--gateway", "10.31.0.254", "fzsnet")  # fmt: skip
        bed.netctl("group", "create", "-ip-pool", "10.31.0.100-10.31.0.104", "fzsnet", "fzsg")
        for did, group, uuid in (("default.fzsnet.", "", NETID), ("default.fzsnet.fzsg", "fzsg", GRPID)):
            rec = {
                "id": did,
                "tenantName": "default",
                "networkName": "fzsnet",
                "serviceName": group,
                "docknetUUID": uuid,
            }
            bed.etcdctl("put", f"/contiv.io/oper/docknet/{did}", json.dumps(rec))
        yield Agent(bed, h)


@timeout(1500)  # (mostly waiting for the test bed, which other runs hold at times)
def test_fuzz_plugin_socket(agent):
    SocketMachine.agent = agent
    t0 = time.monotonic()
    try:
        SocketMachine.TestCase.settings = fuzz_settings(8, steps=25)
        SocketMachine.TestCase().runTest()
    finally:
        SocketMachine.agent = None
    print(
        f"plugin socket fuzz: {agent.calls} calls in {time.monotonic() - t0:.1f} s\n"
        + "\n".join(f"{n:5d} {k}" for k, n in sorted(agent.tally.items()))
    )
    top = sorted(agent.errors.items(), key=lambda kv: -kv[1])[:30]
    print("errors:\n" + "\n".join(f"{n:5d} {k}" for k, n in top))
    agent.alive()
    consistency.assert_consistent(agent.snapshot(), context="the plugin socket fuzz")
    problems = log_problems((agent.host.dir / "netplugin.log").read_text())
    problems += log_problems((agent.bed.dir / "netmaster.log").read_text())
    assert not problems, "unhandled errors logged:\n" + "\n".join(problems[:20])
