"""``netmaster`` entry point: flags -> Config (exit 22 on invalid config), logging, daemon.

Logging imitates logrus' TextFormatter with full timestamps (Go ``StampNano`` layout):
``time="Nov 27 21:30:00.123456789" level=info msg="..."``; ``--use-json-log`` gives one JSON
object per line; ``--use-syslog`` sends to the ``--syslog-url`` (udp/tcp host:port).
Imports are kept lean: aiohttp/aetcd load only once the configuration is valid, and aiohttp's
client side only when first used (``common/fastweb.py``: netmaster serves before it needs it).
"""

from __future__ import annotations

import json
import logging
import sys
import time


class LogrusText(logging.Formatter):
    _LEVELS = {"WARNING": "warning", "CRITICAL": "fatal"}

    def format(self, record: logging.LogRecord) -> str:
        t = time.localtime(record.created)
        ns = int((record.created % 1) * 1e9)
        stamp = time.strftime("%b ", t) + f"{t.tm_mday:2d}" + time.strftime(" %H:%M:%S", t) + f".{ns:09d}"
        level = self._LEVELS.get(record.levelname, record.levelname.lower())
        msg = record.getMessage()
        if record.exc_info:
            msg += "\n" + self.formatException(record.exc_info)
        return f'time="{stamp}" level={level} msg={json.dumps(msg)}'


class LogrusJSON(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "level": record.levelname.lower(),
                "msg": record.getMessage(),
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(record.created)),
            }
        )


def setup_logging(level: str = "INFO", use_json: bool = False, syslog_url: str = "") -> None:
    handler: logging.Handler
    if syslog_url:
        import socket
        from logging.handlers import SysLogHandler
        from urllib.parse import urlparse

        u = urlparse(syslog_url)
        kind = socket.SOCK_STREAM if u.scheme == "tcp" else socket.SOCK_DGRAM
        handler = SysLogHandler((u.hostname or "127.0.0.1", u.port or 514), socktype=kind)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogrusJSON() if use_json else LogrusText())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(
        {"WARN": "WARNING", "FATAL": "CRITICAL", "PANIC": "CRITICAL", "TRACE": "DEBUG"}.get(level, level)
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["migrate"]:  # ``netmaster migrate ...``: import an original Contiv's state
        from contivpy.netmaster.migrate.cli import main as migrate_main

        return migrate_main(args[1:])

    from contivpy.netmaster import config

    ns = config.parse_args(args)
    if ns.version:
        from contivpy.common.version import version_text

        sys.stdout.write(version_text())
        return 0
    setup_logging()
    try:
        cfg = config.build(ns)
    except config.ConfigError as exc:
        logging.getLogger("netmaster").error("%s", exc)
        return 22
    setup_logging(cfg.log_level, cfg.json_log, cfg.syslog_url if cfg.syslog else "")
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
