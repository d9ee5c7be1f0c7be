"""``netmaster`` entry point: flags -> Config (exit 22 on invalid config), logging, daemon.

Logging (text like logrus, ``--use-json-log``, ``--use-syslog``/``--syslog-url``) is
common/logfmt.py, shared with netplugin so both daemons write the same lines.
Imports are kept lean: aiohttp and the etcd client load only once the configuration is valid, and aiohttp's
client side only when first used (``common/fastweb.py``: netmaster serves before it needs it).
When run as the daemon, the cyclic garbage collector is off while the modules load
(``common/startup.py``); the daemon turns it on again once it serves.
"""

from __future__ import annotations

import sys

from contivpy.common import startup

if __name__ == "__main__" or sys.argv[:1] == ["netmaster"]:  # run as the daemon (python -m, bin/netmaster)
    startup.pause()  # before the other imports: they are most of the start-up

import logging  # noqa: E402

from contivpy.common.logfmt import LogSetupError  # noqa: E402
from contivpy.common.logfmt import setup as setup_logging  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["migrate"]:  # ``netmaster migrate ...``: import an original Contiv's state
        startup.resume()
        from contivpy.netmaster.migrate.cli import main as migrate_main

        return migrate_main(args[1:])

    from contivpy.netmaster import config

    ns = config.parse_args(args)
    if ns.version:
        startup.resume()
        from contivpy.common.version import version_text

        sys.stdout.write(version_text())
        return 0
    setup_logging()
    try:
        cfg = config.build(ns)
    except config.ConfigError as exc:
        logging.getLogger("netmaster").error("%s", exc)
        return 22
    try:
        setup_logging(cfg.log_level, cfg.json_log, cfg.syslog_url if cfg.syslog else "", "netmaster")
    except LogSetupError as exc:  # stays on stderr: one error line, exit 22 like other config errors
        setup_logging()
        logging.getLogger("netmaster").error("%s", exc)
        return 22
    log = logging.getLogger("netmaster")
    log.info(
        "Using netmaster mode: %s, network mode: %s, forwarding mode: %s",
        cfg.cluster_mode,
        cfg.net_mode,
        cfg.fwd_mode,
    )
    log.info("Using netmaster state db endpoint: etcd: %s", cfg.etcd_url)
    log.info("Using netmaster external-address: %s, internal-address: %s", cfg.listen_url, cfg.control_url)

    import asyncio

    from contivpy.common import fastweb

    fastweb.install()  # before anything imports aiohttp
    from contivpy.netmaster.daemon import Daemon

    try:
        asyncio.run(Daemon(cfg).run())
    except OSError as exc:
        log.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
