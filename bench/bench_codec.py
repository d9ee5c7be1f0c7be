"""CPU cost of the OpenFlow codec alone (no switch): FLOW_MOD encoding and flow-stats read-back.

Encodes the flows of N remote endpoints (3 each, ARP proxy mode), N service clients (3 each:
ct/nat actions) and N policy rules (masked addresses, tcp_flags) with an empty memo, then decodes
a flow-stats reply holding all of them back into flow values (what a reconnect does). Uses only
``encode_flow_mod``, ``parse_message`` and ``flow_from_stats``, so the same script measures any
codec with that interface (``PYTHONPATH=<tree> python bench/bench_codec.py``). Median of ``--runs``.

    python bench/bench_codec.py [--n 1000] [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from contivpy.ofnet import builders as B  # noqa: E402
from contivpy.ofnet import codec  # noqa: E402
from contivpy.ofnet.cookies import cookie_for  # noqa: E402
from contivpy.ofnet.types import RemoteEndpoint, Rule, Service  # noqa: E402


def flows(n: int) -> list:
    out = []
    svc = Service("10.9.0.100", "t", ["80:8080:TCP"], ["10.9.0.3"])
    for i in range(n):
        a, b = divmod(i + 1, 256)
        rep = RemoteEndpoint(f"02:02:0a:03:{a:02x}:{b:02x}", f"10.3.{a}.{b}", "10.99.77.3", vni=2)
        out += B.remote_endpoint_flows(rep, 1, 3, 9, "vxlan", arp_proxy=True)
        out += B.service_client_flows(svc, 2, f"10.4.{a}.{b}", "10.9.0.3", "02:02:0a:09:00:03")
        out += B.rule_flows(Rule(f"r{i}", i % 100, 1, 2, f"10.{a}.{b}.0/24", "", 6, 0, 80, tcp_flags="syn"))
    return [f.with_cookie(cookie_for(f"bench:{i}")) for i, f in enumerate(out)]


def stats_replies(fl: list) -> list[bytes]:
    """OFPMP_FLOW reply parts (< 64 kB each, as OVS splits them) holding every flow."""
    parts, body = [], b""
    for f in fl:
        mi = codec.encode_flow_mod(f, codec.ADD, 1)[48:]  # match + instructions of the FLOW_MOD
        entry = struct.pack(
            "!HBxIIHHHH4xQQQ", 48 + len(mi), f.table.id, 0, 0, f.priority, 0, 0, 0, f.cookie, 0, 0
        )
        if len(body) + len(entry) + len(mi) > 60000:
            parts.append(body)
            body = b""
        body += entry + mi
    parts.append(body)
    return [struct.pack("!BBHIHH4x", 4, 19, 16 + len(b), 1, 1, 0) + b for b in parts]


def main(n: int, runs: int) -> None:
    fl = flows(n)
    enc, dec = [], []
    for _ in range(runs):
        codec._flow_bytes.cache_clear()
        t0 = time.perf_counter()
        for i, f in enumerate(fl):
            codec.encode_flow_mod(f, codec.ADD, i)
        enc.append(len(fl) / (time.perf_counter() - t0))
    raws = stats_replies(fl)
    for _ in range(runs):
        t0 = time.perf_counter()
        back = [codec.flow_from_stats(s) for raw in raws for s in codec.parse_message(raw).body]
        dec.append(len(fl) / (time.perf_counter() - t0))
    assert back == fl, "read-back differs"
    print(f"{len(fl)} flows: encode {statistics.median(enc):,.0f} flow-mods/s (memo empty); "
          f"flow-stats read-back {statistics.median(dec):,.0f} flows/s (median of {runs})")  # fmt: skip


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=7)
    a = ap.parse_args()
    main(a.n, a.runs)
