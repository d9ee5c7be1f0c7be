"""``netmaster migrate`` at scale: a synthetic original-Contiv state ~100x the recorded one.

    python bench/bench_migrate.py [--tenants 100] [--nets 10] [--eps 10] [--runs 3] [--v2]

The state is generated in the original's v2 layout with the record shapes of the recorded
Contiv 1.2.1 dump (tests/data/contiv-1.2.1-etcd-v2.json) and contivpy's own IPAM/tag code, so it
is consistent: ``tenants x nets`` vxlan networks (default 1,000, each a /24 with a gateway, one
group with a persisted EPG id), ``eps`` endpoints per network (default 10,000 in all), one policy
with 3 rules on the first group of each tenant, one service LB per tenant with two labelled
providers, and one allocated address without an endpoint in every 10th network (imported as an
unclaimed allocation).

Each run: wipe the target etcd (a private etcd 3.4 on free loopback ports), then time the whole
command ``netmaster migrate --from-file DUMP --etcd-endpoints TARGET`` as a subprocess (read,
convert, validate, write) and read its peak RSS (``ru_maxrss`` of the child) and the number of
txns it reports. The conversion alone is also timed in-process with tracemalloc's peak. ``--v2``
also loads the dump into a second etcd started with ``--enable-v2`` (through the v2 API, not
timed) and times ``--from-etcd``. Prints medians over ``--runs``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import BenchEnv, free_port, median, stop_pid  # noqa: E402
from contivpy.model import codec, keys  # noqa: E402
from contivpy.model.state import EndpointGroupState, EndpointState, ServiceLBState  # noqa: E402
from contivpy.netmaster import ipam  # noqa: E402
from contivpy.netmaster.tags import VlanResource, VxlanResource  # noqa: E402

RECORDED = ROOT / "tests" / "data" / "contiv-1.2.1-etcd-v2.json"


def _d(v) -> str:
    return json.dumps(v, separators=(",", ":"))


def _link(typ: str, key: str) -> dict:
    return {"type": typ, "key": key}


def synthesize(n_tenants: int, nets_per: int, eps_per: int) -> dict[str, str]:
    rec = json.loads(RECORDED.read_text())["keys"]
    out: dict[str, str] = {}
    for k in (
        keys.MASTER_CONFIG_GLOBAL,
        keys.obj_key("global", "global"),
        keys.STATE_GLOBAL,
        keys.OPER_GLOBAL,
    ):
        out[k] = rec[k]
    out[keys.LEADER_LOCK] = rec[keys.LEADER_LOCK]
    vl, vx = VlanResource.new("100-400"), VxlanResource.new("5000-8000")
    epg_id = 0
    for t in range(n_tenants):
        tenant = f"t{t:03d}"
        tsets: dict[str, dict] = {"Networks": {}, "EndpointGroups": {}, "Policies": {}, "Servicelbs": {}}
        pol_key = f"{tenant}:pol"
        rules = {
            "1": {"direction": "in", "protocol": "tcp", "port": 80, "priority": 1, "action": "allow"},
            "2": {"direction": "in", "fromEndpointGroup": "g1", "protocol": "tcp", "port": 8080, "priority": 2, "action": "allow"},
            "3": {"direction": "out", "toNetwork": "net2", "protocol": "udp", "port": 53, "priority": 3, "action": "allow"},
        }  # fmt: skip
        for rid, r in rules.items():
            obj = dict(r, key=f"{pol_key}:{rid}", policyName="pol", ruleId=rid, tenantName=tenant)
            obj["link-sets"] = {"Policies": {pol_key: _link("policy", pol_key)}}
            grp = r.get("fromEndpointGroup")
            obj["links"] = {"MatchEndpointGroup": _link("endpointGroup", f"{tenant}:{grp}") if grp else {}}
            out[keys.obj_key("rule", obj["key"])] = codec.dumps("rule", obj)
        pol = {"key": pol_key, "policyName": "pol", "tenantName": tenant}
        pol["link-sets"] = {
            "EndpointGroups": {f"{tenant}:g0": _link("endpointGroup", f"{tenant}:g0")},
            "Rules": {f"{pol_key}:{r}": _link("rule", f"{pol_key}:{r}") for r in rules},
        }
        pol["links"] = {"Tenant": _link("tenant", tenant)}
        out[keys.obj_key("policy", pol_key)] = codec.dumps("policy", pol)
        tsets["Policies"][pol_key] = _link("policy", pol_key)
        svc_net = None
        providers = {}
        for n in range(nets_per):
            i = t * nets_per + n
            net, grp = f"net{n}", f"g{n}"
            nkey, gkey = f"{tenant}:{net}", f"{tenant}:{grp}"
            subnet, gw = f"10.{i // 256}.{i % 256}.0/24", f"10.{i // 256}.{i % 256}.254"
            st = ipam.new_network_state(
                network=net, tenant=tenant, nw_type="data", encap="vxlan", subnet=subnet, gateway=gw
            )
            st.extPktTag, st.pktTag = vx.allocate()
            st.networkTag = st.id
            nobj = {"key": nkey, "encap": "vxlan", "gateway": gw, "networkName": net, "nwType": "data"}
            nobj.update(subnet=subnet, tenantName=tenant)
            nobj["link-sets"] = {"EndpointGroups": {gkey: _link("endpointGroup", gkey)}}
            nobj["links"] = {"Tenant": _link("tenant", tenant)}
            tsets["Networks"][nkey] = _link("network", nkey)
            tsets["EndpointGroups"][gkey] = _link("endpointGroup", gkey)
            epg_id += 1
            g = EndpointGroupState(
                id=f"{grp}:{tenant}", groupName=grp, tenantName=tenant, networkName=net, endpointGroupId=epg_id,
                pktTagType="vxlan", pktTag=st.pktTag, extPktTag=st.extPktTag, epCount=eps_per,
                groupTag=f"{grp}.{tenant}",
            )  # fmt: skip
            gobj = {"key": gkey, "groupName": grp, "networkName": net, "tenantName": tenant}
            gobj["link-sets"] = {}
            gobj["links"] = {"AppProfile": {}, "NetProfile": {}, "Network": _link("network", nkey)}
            gobj["links"]["Tenant"] = _link("tenant", tenant)
            if n == 0:
                gobj["policies"] = ["pol"]
                gobj["link-sets"]["Policies"] = {pol_key: _link("policy", pol_key)}
            if n == 1:
                gobj["link-sets"]["MatchRules"] = {f"{pol_key}:2": _link("rule", f"{pol_key}:2")}
            for e in range(eps_per):
                ip = ipam.allocate(st)
                ep_id = f"{tenant}-{net}-ep{e:03d}"
                labels = {"app": "web"} if n == 0 and e < 2 else None
                ep = EndpointState(
                    id=keys.endpoint_state_id(net, tenant, ep_id), netID=st.id, endpointID=ep_id,
                    serviceName=grp, endpointGroupId=epg_id, endpointGroupKey=g.id, ipAddress=ip,
                    macAddress="02:02:" + ":".join(f"{int(x):02x}" for x in ip.split(".")),
                    homingHost=f"h{e % 2 + 1}", labels=labels, containerId=ep_id if labels else "",
                    epCommonName=ep_id,
                )  # fmt: skip
                out[keys.ep_state(ep.id)] = ep.to_json()
                if labels:
                    providers[f"{ip}:{tenant}"] = {
                        "IPAddress": ip, "ContainerID": ep_id, "Labels": labels, "Tenant": tenant,
                        "Network": net, "Services": [f"svc:{tenant}"], "Container": "", "EpIDKey": ep.id,
                    }  # fmt: skip
            st.epCount = eps_per
            if i % 10 == 0:
                ipam.allocate(st)  # a pending allocAddress: no endpoint
            if n == 0:
                svc_net = st
                vip = ipam.allocate(svc_net)
            out[keys.obj_key("network", nkey)] = codec.dumps("network", nobj)
            out[keys.obj_key("endpointGroup", gkey)] = codec.dumps("endpointGroup", gobj)
            out[keys.epg_state(g.id)] = g.to_json()
            out[keys.net_state(st.id)] = st.to_json()
        sobj = {
            "key": f"{tenant}:svc",
            "networkName": "net0",
            "ports": ["80:8080:TCP"],
            "selectors": ["app=web"],
        }
        sobj.update(serviceName="svc", tenantName=tenant)
        sobj["links"] = {"Network": _link("network", f"{tenant}:net0"), "Tenant": _link("tenant", tenant)}
        out[keys.obj_key("serviceLB", sobj["key"])] = codec.dumps("serviceLB", sobj)
        tsets["Servicelbs"][sobj["key"]] = _link("serviceLB", sobj["key"])
        svc = ServiceLBState(
            id=f"svc:{tenant}", servicename="svc", tenantname=tenant, subnet="net0", ports=["80:8080:TCP"],
            selectors={"app": "web"}, ipaddress=vip, providers=providers,
        )  # fmt: skip
        out[keys.SERVICE_LB + svc.id] = svc.to_json()
        ips = sorted(p["IPAddress"] for p in providers.values())
        out[keys.PROVIDER + svc.id] = _d({"id": svc.id, "ServiceName": svc.id, "Providers": ips})
        tobj = {"key": tenant, "tenantName": tenant, "link-sets": tsets}
        out[keys.obj_key("tenant", tenant)] = codec.dumps("tenant", tobj)
    out[keys.STATE_AUTO_VLAN], out[keys.OPER_AUTO_VLAN] = vl.state_json(), vl.oper_json()
    out[keys.STATE_AUTO_VXLAN], out[keys.OPER_AUTO_VXLAN] = vx.state_json(), vx.oper_json()
    # the EPG-policy state the original wrote for it (same ofnet rules, docs/upgrade.md)
    from contivpy.netmaster.migrate.convert import _policy_ops, _run

    out.update(_run(_policy_ops(out)))
    return dict(sorted(out.items()))


def run_cli(args: list[str]) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (kB) and stdout of one ``netmaster migrate`` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.monotonic()
    r = subprocess.run(
        [sys.executable, "-m", "contivpy.netmaster", "migrate", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        timeout=1800,
    )
    wall = time.monotonic() - t0
    if r.returncode != 0:
        raise RuntimeError(f"migrate failed: {r.stderr[-2000:]}")
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(rss, before), r.stdout


def start_v2_etcd(tmp: Path):
    port, peer = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        "/usr/bin/etcd", "--name=tbv2", f"--data-dir={tmp / 'v2'}", f"--listen-client-urls={url}",
        f"--advertise-client-urls={url}", f"--listen-peer-urls=http://127.0.0.1:{peer}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
        f"--initial-cluster=tbv2=http://127.0.0.1:{peer}", "--enable-v2",
    ]  # fmt: skip
    log = open(tmp / "v2.log", "ab")  # noqa: SIM115 (kept open for the process's life)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    import urllib.request

    for _ in range(200):
        try:
            urllib.request.urlopen(f"{url}/v2/keys/", timeout=1).read()
            return proc, url
        except OSError:
            time.sleep(0.1)
    stop_pid(proc)
    raise RuntimeError("v2 etcd did not start")


def load_v2(url: str, state: dict[str, str]) -> None:
    import http.client
    from urllib.parse import urlencode, urlsplit

    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    for k, v in state.items():
        conn.request("PUT", f"/v2/keys{k}", body=urlencode({"value": v}),
                     headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
        resp = conn.getresponse()
        resp.read()
        if resp.status not in (200, 201):
            raise RuntimeError(f"v2 put {k}: {resp.status}")
    conn.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tenants", type=int, default=100)
    ap.add_argument("--nets", type=int, default=10)
    ap.add_argument("--eps", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--v2", action="store_true", help="also import from a live etcd serving v2")
    a = ap.parse_args()
    state = synthesize(a.tenants, a.nets, a.eps)
    n_nets = sum(1 for k in state if k.startswith(keys.NETS))
    n_eps = sum(1 for k in state if k.startswith(keys.EPS))
    size = sum(len(k) + len(v) for k, v in state.items())
    print(f"synthetic state: {len(state)} keys, {size / 1e6:.1f} MB, {n_nets} networks, {n_eps} endpoints")

    from contivpy.netmaster.migrate.convert import convert

    conv = []
    for _ in range(a.runs):
        tracemalloc.start()
        t0 = time.perf_counter()
        plan = convert(state, now=time.time())
        conv.append(time.perf_counter() - t0)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert not plan.report.refused, plan.report.render()[-3000:]
    print(
        f"convert only (in-process, tracemalloc on): median {median(conv):.2f} s, "
        f"peak traced {peak / 1e6:.0f} MB, {len(plan.target)} keys out, "
        f"{len(plan.report.unclaimed)} unclaimed allocations"
    )
    with tempfile.TemporaryDirectory(prefix="tbm-migrate-") as tmp, BenchEnv() as env:
        dump = Path(tmp) / "state.json"
        dump.write_text(json.dumps({"keys": state}))
        walls, rsss, txns = [], [], ""
        for _ in range(a.runs):
            env.wipe()
            wall, rss, outp = run_cli(["--from-file", str(dump), "--etcd-endpoints", env.etcd_url])
            walls.append(wall)
            rsss.append(rss)
            txns = [ln for ln in outp.splitlines() if ln.startswith("wrote ")][0]
        print(f"--from-file, whole command: median {median(walls):.2f} s (runs {', '.join(f'{w:.2f}' for w in walls)}), "
              f"peak RSS {max(rsss) / 1024:.0f} MB; {txns}")  # fmt: skip
        if a.v2:
            proc, url = start_v2_etcd(Path(tmp))
            try:
                t0 = time.monotonic()
                load_v2(url, state)
                print(
                    f"loaded the v2 etcd through the v2 API in {time.monotonic() - t0:.1f} s (not part of the import)"
                )
                walls = []
                for _ in range(a.runs):
                    env.wipe()
                    wall, rss, outp = run_cli(["--from-etcd", url, "--etcd-endpoints", env.etcd_url])
                    walls.append(wall)
                print(f"--from-etcd, whole command: median {median(walls):.2f} s (runs "
                      f"{', '.join(f'{w:.2f}' for w in walls)})")  # fmt: skip
            finally:
                stop_pid(proc)


if __name__ == "__main__":
    main()
