"""``netmaster migrate``: import an original Contiv cluster's etcd v2 state (docs/upgrade.md).

    netmaster migrate (--from-etcd http://HOST:2379 | --from-file DUMP.json)
                      [--etcd-endpoints URLS] [--dry-run] [--repair] [--merge] [--rollback]
                      [--report-json PATH] [--alloc-ttl SECONDS]

A subcommand of netmaster (not a separate console script): the operator already has it where
netmaster runs, it takes the same ``--etcd-endpoints`` (and ``CONTIV_NETMASTER_ETCD_TLS_*``) as
the daemon, and nothing new is installed.

Order: read the whole source, convert and validate it all (``convert.convert``), print the report;
refuse (exit 1, nothing written) on unknown keys or problems (with ``--repair``: on problems that
cannot be repaired); ``--dry-run`` prints every key that would be written and stops; otherwise
write (``writer.write``). Exit status: 0 done (or nothing to do), 1 refused or failed, 2 usage.
Messages go to stderr as ``migrate: ...``; the report goes to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

from contivpy.common.errors import ContivError
from contivpy.netmaster.migrate import source as src_mod
from contivpy.netmaster.migrate.convert import DEFAULT_ALLOC_TTL, MigrateError, convert


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's exit 2 with our prefix
        self.print_usage(sys.stderr)
        sys.stderr.write(f"migrate: {message}\n")
        sys.exit(2)


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="netmaster migrate",
        description="Import an original Contiv cluster's etcd v2 state into contivpy's etcd (v3).",
    )
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--from-etcd", metavar="URL", help="the original's etcd, read through the v2 API")
    g.add_argument("--from-file", metavar="PATH", help="a JSON dump of the original's /contiv.io keys")
    for name in ("ca", "cert", "key"):
        p.add_argument(
            f"--from-etcd-{name}-file",
            default="",
            metavar="PATH",
            help=f"TLS {name} file of an https:// source",
        )
    p.add_argument(
        "--etcd-endpoints",
        "--etcd",
        dest="etcd",
        metavar="URLS",
        default=os.environ.get("CONTIV_NETMASTER_ETCD_ENDPOINTS", "http://127.0.0.1:2379"),
        help="the target etcd (contivpy's), comma list (default http://127.0.0.1:2379)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="print the report and every key that would be written"
    )
    p.add_argument("--repair", action="store_true", help="fix the problems the report lists as repairable")
    p.add_argument("--merge", action="store_true", help="allow a target that already holds contivpy state")
    p.add_argument(
        "--rollback", action="store_true", help="undo an import of this source (finished or cut short)"
    )
    p.add_argument("--report-json", metavar="PATH", help="also write the report as JSON")
    p.add_argument(
        "--alloc-ttl",
        type=float,
        default=float(os.environ.get("CONTIV_NETMASTER_ALLOC_TTL", DEFAULT_ALLOC_TTL) or DEFAULT_ALLOC_TTL),
        metavar="SECONDS",
        help="lifetime of imported unclaimed allocations (default: netmaster's CONTIV_NETMASTER_ALLOC_TTL, 300)",
    )
    return p


def _err(msg: str) -> int:
    sys.stderr.write(f"migrate: {msg}\n")
    return 1


async def _open_target(url: str):
    from contivpy.common.kv import open_store

    env = os.environ
    kv = open_store(
        url,
        ca_file=env.get("CONTIV_NETMASTER_ETCD_TLS_CA_FILE", ""),
        cert_file=env.get("CONTIV_NETMASTER_ETCD_TLS_CERT_FILE", ""),
        key_file=env.get("CONTIV_NETMASTER_ETCD_TLS_KEY_FILE", ""),
    )
    connect = getattr(kv, "connect", None)
    if connect is not None:
        await connect()
    return kv


async def _write(args, target: dict[str, str], digest: str) -> int:
    from contivpy.netmaster.migrate import writer

    kv = await _open_target(args.etcd)
    try:
        t0 = time.monotonic()
        if args.rollback:
            res = await writer.rollback(kv, target, digest)
            print(f"rolled back: {res.deleted} keys deleted in {res.txns} txns")
            return 0
        res = await writer.write(kv, target, digest, merge=args.merge)
        if res.already_done:
            print(
                f"already imported from this source: nothing written ({res.unchanged} of {len(target)} keys unchanged since)"
            )
            return 0
        how = "resumed: " if res.resumed else ""
        print(
            f"{how}wrote {res.written} keys in {res.txns} txns ({res.unchanged} already in place) "
            f"in {time.monotonic() - t0:.2f}s"
        )
        return 0
    finally:
        await kv.close()


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        if args.from_etcd:
            src = src_mod.from_etcd(
                args.from_etcd,
                ca_file=args.from_etcd_ca_file,
                cert_file=args.from_etcd_cert_file,
                key_file=args.from_etcd_key_file,
            )
        else:
            src = src_mod.from_file(args.from_file)
        plan = convert(src.keys, repair=args.repair, now=time.time(), alloc_ttl=args.alloc_ttl)
    except MigrateError as exc:
        return _err(f"{exc}; nothing written")
    except Exception as exc:  # a source shape no check anticipated: never a traceback
        return _err(f"cannot convert the source ({type(exc).__name__}: {exc}); nothing written")
    rep = plan.report
    sys.stdout.write(f"source: {src.origin}\n" + rep.render())
    if args.report_json:
        try:
            with open(args.report_json, "w", encoding="utf-8") as f:
                json.dump(rep.to_dict(), f, indent=2)
        except OSError as exc:
            return _err(f"cannot write {args.report_json}: {exc.strerror or exc}")
    if rep.refused:
        if rep.unknown:
            return _err(f"refused: {len(rep.unknown)} keys of unknown kinds (listed above); nothing written")
        fixable = all(f.repair for f in rep.problems)
        hint = " (all repairable: run again with --repair)" if fixable and not args.repair else ""
        return _err(
            f"refused: {len([f for f in rep.problems if not (args.repair and f.repair)])} problems{hint}; nothing written"
        )
    if args.dry_run:
        for k, v in plan.target.items():
            sys.stdout.write(f"put {k} {v}\n")
        sys.stdout.write(f"dry run: {len(plan.target)} keys would be written; nothing written\n")
        return 0
    from contivpy.netmaster.migrate.writer import source_digest

    digest = source_digest(src.keys, args.repair)
    try:
        return asyncio.run(_write(args, plan.target, digest))
    except MigrateError as exc:
        return _err(f"refused: {exc}")
    except ContivError as exc:
        return _err(f"target etcd {args.etcd}: {exc}")
    except KeyboardInterrupt:
        return _err("interrupted: run the same command again to resume")


__all__ = ["main", "parser"]
