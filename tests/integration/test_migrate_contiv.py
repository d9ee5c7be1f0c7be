"""``netmaster migrate`` end to end: the recorded Contiv 1.2.1 state (tests/data, docs/upgrade.md)
loaded into a real etcd 3.4 serving v2, imported into contivpy's etcd, served by a real netmaster,
and checked against the netctl outputs the original printed for that state."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from contivpy.model import keys
from contivpy.netmaster.migrate.convert import INTENT_KEY, convert

pytestmark = pytest.mark.etcd

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
DUMP = DATA / "contiv-1.2.1-etcd-v2.json"
DAMAGED = DATA / "contiv-1.2.1-etcd-v2-damaged.json"


def dump_keys(path: Path = DUMP) -> dict[str, str]:
    return json.loads(path.read_text())["keys"]


def migrate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(ROOT / "bin" / "netmaster"), "migrate", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )


def netctl(url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(ROOT / "bin" / "netctl"), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=dict(os.environ, PYTHONPATH=str(ROOT), NETMASTER=url),
    )


def target_keys(etcd_server) -> dict[str, str]:
    out = etcd_server.etcdctl("get", "--prefix", "/contiv.io", "-w", "json")
    import base64

    kvs = json.loads(out).get("kvs") or []
    return {base64.b64decode(i["key"]).decode(): base64.b64decode(i.get("value", "")).decode() for i in kvs}


def stable(target: dict[str, str]) -> dict[str, str]:
    """Without the values that depend on when the import ran (record times, the intent record)."""
    out = {}
    for k, v in target.items():
        if k == INTENT_KEY:
            continue
        if k.startswith(keys.ADDR_ALLOC):
            v = json.dumps({f: x for f, x in json.loads(v).items() if f not in ("created", "expires")})
        out[k] = v
    return out


# --- normalisation of netctl outputs (docs/upgrade.md "Comparing with the original") ------------------


def _table_rows(text: str) -> tuple[list[str], list[str]]:
    lines = text.splitlines()
    return lines[:2], sorted(lines[2:])


def normalise(args: list[str], text: str):
    if args[1] == "inspect":
        return _sort_lists(json.loads(text))
    if args[1] == "rule-ls":
        sections, cur = [], None
        for line in text.splitlines():
            if line.endswith("Rules:"):
                cur = [line]
                sections.append(cur)
            else:
                cur.append(line)
        return [(s[:3], sorted(s[3:])) for s in sections]
    if args[:2] == ["netprofile", "ls"]:
        # the original's misaligned row (a profile without burst) takes its width from its
        # neighbours, so it depends on the row order: compare the cells
        head, rows = _table_rows(text)
        return head, sorted(" ".join(r.split()) for r in rows)
    if args[1] == "ls":
        return _table_rows(text)
    return text


def _sort_lists(v):
    if isinstance(v, dict):
        return {k: _sort_lists(x) for k, x in v.items()}
    if isinstance(v, list):
        items = [_sort_lists(x) for x in v]
        if all(isinstance(x, dict) for x in items):
            return sorted(items, key=lambda x: json.dumps(x, sort_keys=True))
        return items
    return v


RECORDED = json.loads((DATA / "contiv-1.2.1-netctl-outputs.json").read_text())["outputs"]


def check_outputs(url: str) -> list[str]:
    import difflib

    diffs = []
    for rec in RECORDED:
        r = netctl(url, *rec["args"])
        got, want = normalise(rec["args"], r.stdout), normalise(rec["args"], rec["stdout"])
        if "when" in rec:  # printed before the networks existed: only the configuration compares
            got, want = got["Config"], want["Config"]
        if r.returncode != rec["exit"] or got != want:
            a = json.dumps(want, indent=1).splitlines()
            b = json.dumps(got, indent=1).splitlines()
            diff = "\n".join(difflib.unified_diff(a, b, "original", "contivpy", lineterm=""))
            diffs.append(f"$ netctl {' '.join(rec['args'])} [exit={r.returncode}] {r.stderr}\n{diff}")
    return diffs


# --- tests -----------------------------------------------------------------------------------------


@pytest.fixture
def loaded_v2(etcd_v2):
    etcd_v2.wipe()
    etcd_v2.load(dump_keys())
    try:
        yield etcd_v2
    finally:
        etcd_v2.wipe()


def test_import_from_live_etcd_then_netmaster_serves_the_original_outputs(
    loaded_v2, etcd_server, netmaster_factory
):
    assert loaded_v2.v2_keys() == dump_keys()
    r = migrate("--from-etcd", loaded_v2.url, "--etcd-endpoints", etcd_server.url)
    assert r.returncode == 0, r.stderr
    assert "wrote 134 keys in 4 txns" in r.stdout, r.stdout
    assert "10.103.1.3 in test-net.default" in r.stdout
    got = target_keys(etcd_server)
    want = convert(dump_keys(), now=0.0).target
    assert stable(got) == stable(want)
    assert json.loads(got[INTENT_KEY])["state"] == "done"

    # idempotent: a second run writes nothing
    before = etcd_server.etcdctl("get", "--prefix", "/contiv.io", "-w", "json")
    r = migrate("--from-etcd", loaded_v2.url, "--etcd-endpoints", etcd_server.url)
    assert r.returncode == 0 and "already imported from this source: nothing written" in r.stdout, (
        r.stdout + r.stderr
    )
    assert (
        json.loads(etcd_server.etcdctl("get", "--prefix", "/contiv.io", "-w", "json"))["kvs"]
        == json.loads(before)["kvs"]
    )

    nm = netmaster_factory()
    diffs = check_outputs(nm.url)
    assert not diffs, "\n\n".join(diffs)

    # new endpoints get the next free address, never one the import carried over as used
    ep = {
        "TenantName": "default",
        "NetworkName": "test-net",
        "ServiceName": "",
        "EndpointID": "tmg-new-1",
        "EPCommonName": "tmg-new-1",
        "ConfigEP": {
            "Container": "tmg-new-1",
            "Host": "h1",
            "IPAddress": "",
            "IPv6Address": "",
            "ServiceName": "",
        },
    }
    res = nm.json("POST", "/plugin/createEndpoint", ep)
    assert res["EndpointConfig"]["ipAddress"] == "10.103.1.5"  # .1 VIP, .2/.4 endpoints, .3 unclaimed
    res = nm.json(
        "POST",
        "/plugin/allocAddress",
        {"NetworkID": "web-net.default", "AddressPool": "", "PreferredIPv4Address": ""},
    )
    assert res["IPv4Address"] == "10.36.1.3/24"  # freed in the original (web-3 deleted)
    res = nm.json(
        "POST",
        "/plugin/allocAddress",
        {"NetworkID": "test-net:app.default", "AddressPool": "", "PreferredIPv4Address": ""},
    )
    assert res["IPv4Address"] == "10.103.1.100/24"  # freed in app's pool (app-2 deleted)
    status, _, text = nm.request(
        "POST",
        "/plugin/allocAddress",
        {"NetworkID": "test-net.default", "AddressPool": "", "PreferredIPv4Address": "10.103.1.3"},
    )
    assert status != 200 and "10.103.1.3 is not available" in text


def test_import_from_file_equals_import_from_live_etcd(etcd_server, netmaster_factory):
    r = migrate("--from-file", str(DUMP), "--etcd-endpoints", etcd_server.url)
    assert r.returncode == 0, r.stderr
    assert stable(target_keys(etcd_server)) == stable(convert(dump_keys(), now=0.0).target)
    nm = netmaster_factory()
    assert netctl(nm.url, "group", "ls", "-a").returncode == 0


def test_bad_sources_refused_and_nothing_written(etcd_v2, etcd_server, netmaster_factory, tmp_path):
    etcd_v2.wipe()
    cases = []
    r = migrate("--from-etcd", "http://127.0.0.1:1", "--etcd-endpoints", etcd_server.url)
    cases.append(
        (
            r,
            "migrate: cannot reach the source etcd at http://127.0.0.1:1: Connection refused; nothing written",
        )
    )
    r = migrate("--from-etcd", etcd_v2.url, "--etcd-endpoints", etcd_server.url)
    cases.append(
        (r, "has no /contiv.io: it does not hold an original Contiv cluster's state; nothing written")
    )
    r = migrate("--from-etcd", etcd_server.url, "--etcd-endpoints", etcd_server.url)
    cases.append((r, "does not serve the v2 API: the original Contiv kept its state in etcd v2"))
    text = DUMP.read_text()
    (tmp_path / "trunc.json").write_text(text[: len(text) // 2])
    r = migrate("--from-file", str(tmp_path / "trunc.json"), "--etcd-endpoints", etcd_server.url)
    cases.append((r, "trunc.json is truncated: the JSON ends early"))
    (tmp_path / "bad.json").write_text("contiv!")
    r = migrate("--from-file", str(tmp_path / "bad.json"), "--etcd-endpoints", etcd_server.url)
    cases.append((r, "bad.json is not valid JSON (line 1, column 1); nothing written"))
    src = dump_keys()
    src["/contiv.io/obj/modeldb/volumeSnapshot/x"] = "{}"
    src["/contiv.io/oper/weird/y"] = "{}"
    (tmp_path / "unknown.json").write_text(json.dumps({"keys": src}))
    r = migrate("--from-file", str(tmp_path / "unknown.json"), "--etcd-endpoints", etcd_server.url)
    cases.append((r, "refused: 2 keys of unknown kinds (listed above); nothing written"))
    assert "  /contiv.io/obj/modeldb/volumeSnapshot/x\n  /contiv.io/oper/weird/y\n" in r.stdout
    src = dump_keys()
    net = json.loads(src["/contiv.io/obj/modeldb/network/default:web-net"])
    net["encap"] = "gre"
    src["/contiv.io/obj/modeldb/network/default:web-net"] = json.dumps(net)
    (tmp_path / "invalid.json").write_text(json.dumps({"keys": src}))
    r = migrate(
        "--from-file", str(tmp_path / "invalid.json"), "--etcd-endpoints", etcd_server.url, "--repair"
    )
    cases.append(
        (
            r,
            "network/default:web-net: fails the model's validation: encap string invalid format [not repairable]",
        )
    )
    for r, msg in cases:
        assert r.returncode == 1, (r.stdout, r.stderr)
        assert msg in r.stdout + r.stderr, (msg, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr
    assert target_keys(etcd_server) == {}
    r = migrate("--from-file", str(DUMP), "--dry-run", "--etcd-endpoints", etcd_server.url)
    assert r.returncode == 0 and r.stdout.endswith("dry run: 134 keys would be written; nothing written\n")
    assert "put /contiv.io/master/epgid/1 db:default\n" in r.stdout
    assert target_keys(etcd_server) == {}

    # a v3 etcd holding contivpy state: refused as a source, and as a target without --merge
    assert migrate("--from-file", str(DUMP), "--etcd-endpoints", etcd_server.url).returncode == 0
    r = migrate("--from-etcd", etcd_server.url, "--etcd-endpoints", etcd_server.url)
    assert r.returncode == 1 and "(its v3 keyspace holds /contiv.io: contivpy state)" in r.stderr, r.stderr
    other = dump_keys(DAMAGED)
    (tmp_path / "other.json").write_text(json.dumps({"keys": other}))
    before = target_keys(etcd_server)
    r = migrate("--from-file", str(tmp_path / "other.json"), "--repair", "--etcd-endpoints", etcd_server.url)
    assert r.returncode == 1 and "holds an import of another source" in r.stderr, r.stderr
    etcd_server.etcdctl("del", INTENT_KEY)
    r = migrate("--from-file", str(tmp_path / "other.json"), "--repair", "--etcd-endpoints", etcd_server.url)
    assert r.returncode == 1 and "already holds contivpy state" in r.stderr and "use --merge" in r.stderr, (
        r.stderr
    )
    r = migrate(
        "--from-file",
        str(tmp_path / "other.json"),
        "--repair",
        "--merge",
        "--etcd-endpoints",
        etcd_server.url,
    )
    assert r.returncode == 1 and "--merge: the target holds these keys with other values" in r.stderr, (
        r.stderr
    )
    assert "/contiv.io/obj/modeldb/global/global" in r.stderr
    before.pop(INTENT_KEY)
    assert target_keys(etcd_server) == before


def test_damaged_copy_refused_then_repaired(etcd_server, netmaster_factory):
    r = migrate("--from-file", str(DAMAGED), "--etcd-endpoints", etcd_server.url)
    assert r.returncode == 1
    assert (
        "migrate: refused: 5 problems (all repairable: run again with --repair); nothing written" in r.stderr
    )
    for line in (
        "/contiv.io/obj/modeldb/tenant/default: link-set Networks names missing network default:gone-net [--repair: drop the link]",
        "/contiv.io/state/nets/db-net.default: vlan 200 outside the global vlan range 100-150 [--repair: widen the global vlan range]",
        "address 10.36.1.4 is marked free in network web-net.default's map [--repair: mark it used]",
    ):
        assert line in r.stdout, r.stdout
    assert target_keys(etcd_server) == {}
    r = migrate("--from-file", str(DAMAGED), "--repair", "--etcd-endpoints", etcd_server.url)
    assert r.returncode == 0, r.stderr
    nm = netmaster_factory()
    out = netctl(nm.url, "global", "info").stdout
    assert "Vlan Range: 100-200" in out
    inspect = json.loads(netctl(nm.url, "network", "inspect", "web-net").stdout)
    assert inspect["Oper"]["allocatedIPAddresses"] == "10.36.1.1-10.36.1.2, 10.36.1.4, 10.36.1.254"
    ten = json.loads(netctl(nm.url, "tenant", "inspect", "default").stdout)
    assert "default:gone-net" not in ten["Config"]["link-sets"]["Networks"]
    # the repaired address is not handed out again
    res = nm.json(
        "POST",
        "/plugin/allocAddress",
        {"NetworkID": "web-net.default", "AddressPool": "", "PreferredIPv4Address": ""},
    )
    assert res["IPv4Address"] == "10.36.1.3/24"
    res = nm.json(
        "POST",
        "/plugin/allocAddress",
        {"NetworkID": "web-net.default", "AddressPool": "", "PreferredIPv4Address": ""},
    )
    assert res["IPv4Address"] == "10.36.1.5/24"


def test_interrupted_import_resumes(etcd_server, netmaster_factory):
    """A crash after the first batch: the intent record says 'writing'; the same command resumes."""
    import asyncio

    from contivpy.common.kv.etcd import EtcdKV
    from contivpy.netmaster.migrate import writer

    target = convert(dump_keys(), now=5.0).target
    digest = writer.source_digest(dump_keys(), False)

    class Crash(Exception):
        pass

    def crash(done, total):
        raise Crash

    async def first_batch_only():
        kv = EtcdKV(etcd_server.host, etcd_server.port)
        await kv.connect()
        try:
            await writer.write(kv, target, digest, progress=crash)
        except Crash:
            pass
        finally:
            await kv.close()

    asyncio.run(first_batch_only())
    part = target_keys(etcd_server)
    intent = json.loads(part[INTENT_KEY])
    assert intent["state"] == "writing" and intent["written"] == 96 and len(part) == 97
    rec = keys.addr_alloc("test-net.default", "10.103.1.3")
    r = migrate("--from-file", str(DUMP), "--etcd-endpoints", etcd_server.url)
    assert r.returncode == 0 and "resumed: wrote 38 keys in 3 txns (96 already in place)" in r.stdout, (
        r.stdout + r.stderr
    )
    got = target_keys(etcd_server)
    assert stable(got) == stable(target)
    assert json.loads(got[INTENT_KEY])["state"] == "done"
    assert rec in got
    # rollback removes exactly the import
    r = migrate("--from-file", str(DUMP), "--rollback", "--etcd-endpoints", etcd_server.url)
    assert r.returncode == 0 and "rolled back: 134 keys deleted" in r.stdout, r.stdout + r.stderr
    assert target_keys(etcd_server) == {}


def test_imported_unclaimed_allocation_follows_the_reclaim_rules(etcd_server, netmaster_factory):
    """The pending allocation 10.103.1.3 is imported with the reclaim TTL: unclaimed, it is freed."""
    import time

    r = migrate("--from-file", str(DUMP), "--alloc-ttl", "1", "--etcd-endpoints", etcd_server.url)
    assert r.returncode == 0, r.stderr
    rec = keys.addr_alloc("test-net.default", "10.103.1.3")
    assert rec in target_keys(etcd_server)
    nm = netmaster_factory(env={"CONTIV_NETMASTER_ALLOC_TTL": "1"})
    deadline = time.monotonic() + 20
    while rec in target_keys(etcd_server) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert rec not in target_keys(etcd_server)
    res = nm.json(
        "POST",
        "/plugin/allocAddress",
        {"NetworkID": "test-net.default", "AddressPool": "", "PreferredIPv4Address": ""},
    )
    assert res["IPv4Address"] == "10.103.1.3/24"
