"""Log output of both daemons: one format, one set of flags (docs/deployment.md, "Logs").

netmaster and netplugin both accept ``--log-level``, ``--use-json-log`` (``--json-log``),
``--use-syslog`` (``--syslog``) and ``--syslog-url`` (default ``udp://127.0.0.1:514``), and both
call ``setup(level, use_json, syslog_url)`` here, so their lines cannot drift apart:

- text (default), like logrus' TextFormatter with full timestamps (Go ``StampNano`` layout):
  ``time="Nov 27 21:30:00.123456789" level=info msg="..."`` (``msg`` is always quoted, JSON
  escapes, so a line never breaks in two; a traceback stays inside the quotes);
- ``--use-json-log``: one JSON object per line, ``{"level": ..., "msg": ..., "time": ...}`` with an
  RFC 3339 local time to the second (logrus' JSONFormatter);
- ``--use-syslog``: the same lines (text or JSON) go to the syslog server at ``--syslog-url``
  (``udp://host:port`` or ``tcp://host:port``; ``kernel`` or ``unix:///dev/log`` for the local
  syslog socket) instead of stderr, as ``<priority>DAEMON[pid]: LINE`` (priority from the level,
  facility user).

Levels use logrus' names (``warning``, ``fatal``); ``parse_level`` checks a ``--log-level`` value
for both daemons (logrus' names, any case, and its error message); ``setup`` accepts logrus and
Python names. Standard library only: this runs
before anything else on the daemons' start-up path.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

DEFAULT_SYSLOG_URL = "udp://127.0.0.1:514"


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
    _LEVELS = LogrusText._LEVELS

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        if record.exc_info:
            msg += "\n" + self.formatException(record.exc_info)
        return json.dumps(
            {
                "level": self._LEVELS.get(record.levelname, record.levelname.lower()),
                "msg": msg,
                "time": rfc3339(record.created),
            }
        )


def rfc3339(created: float) -> str:
    """Local time to the second with its UTC offset, ``Z`` for UTC (Go's ``time.RFC3339``)."""
    t = time.localtime(created)
    off = t.tm_gmtoff or 0
    if off == 0:
        zone = "Z"
    else:
        sign, off = ("+", off) if off > 0 else ("-", -off)
        zone = f"{sign}{off // 3600:02d}:{off % 3600 // 60:02d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + zone


class LogSetupError(ValueError):
    """The syslog destination cannot be used (bad URL, unknown host): the daemon says so and exits."""


def _syslog_handler(url: str, ident: str) -> logging.Handler:
    import socket
    from logging.handlers import SysLogHandler
    from urllib.parse import urlparse

    class Handler(SysLogHandler):
        """A syslog server that stops answering costs one error line on stderr (not a traceback
        per message); the next message that gets through re-arms it."""

        failing = False
        _failed_now = False

        def emit(self, record: logging.LogRecord) -> None:
            self._failed_now = False
            super().emit(record)
            if not self._failed_now:
                self.failing = False

        def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
            self._failed_now = True
            if not self.failing:
                self.failing = True
                msg = f"cannot send log lines to syslog {url}: {sys.exc_info()[1]}; they are lost until it answers"
                err = logging.LogRecord("logfmt", logging.ERROR, __file__, 0, msg, None, None)
                sys.stderr.write(LogrusText().format(err) + "\n")

    bad = f"invalid syslog url {url!r} (want udp://host:port, tcp://host:port or kernel)"
    try:
        if url in ("kernel", "unix:///dev/log"):
            h = Handler("/dev/log")
        else:
            u = urlparse(url)
            if u.scheme not in ("udp", "tcp") or not u.hostname:
                raise LogSetupError(bad)
            kind = socket.SOCK_STREAM if u.scheme == "tcp" else socket.SOCK_DGRAM
            h = Handler((u.hostname, u.port or 514), socktype=kind)
    except ValueError as exc:  # a port that is no number
        raise LogSetupError(bad if not isinstance(exc, LogSetupError) else str(exc)) from None
    except OSError as exc:  # unknown host, TCP server not answering
        raise LogSetupError(f"cannot use syslog {url}: {exc.strerror or exc}") from None
    if ident:  # the syslog tag: "<pri>netmaster[1234]: time=..."
        h.ident = f"{ident}[{os.getpid()}]: "
    return h


_PY_LEVELS = {"WARN": "WARNING", "FATAL": "CRITICAL", "PANIC": "CRITICAL", "TRACE": "DEBUG"}
LEVELS = ("DEBUG", "INFO", "WARN", "ERROR", "FATAL", "PANIC", "TRACE")


def parse_level(raw: str, debug: bool = False) -> str:
    """``--log-level`` value (any case; ``warning`` = ``warn``) -> a logrus level name in upper case.

    ``debug`` (the legacy ``-debug`` flag) wins. Raises ``ValueError`` with logrus' message."""
    if debug:
        return "DEBUG"
    level = str(raw).upper()
    if level == "WARNING":
        level = "WARN"
    if level not in LEVELS:
        raise ValueError(f'not a valid logrus Level: "{raw}"')
    return level


def setup(level: str = "INFO", use_json: bool = False, syslog_url: str = "", ident: str = "") -> None:
    """Route the root logger to stderr (or ``syslog_url`` when given) in the shared format.

    ``ident`` (the daemon's name) becomes the syslog tag ``ident[pid]: `` of each message.
    Raises ``LogSetupError`` (logging left as it was) when the syslog URL cannot be used."""
    handler = _syslog_handler(syslog_url, ident) if syslog_url else logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogrusJSON() if use_json else LogrusText())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    level = level.upper()
    root.setLevel(_PY_LEVELS.get(level, level))


__all__ = [
    "DEFAULT_SYSLOG_URL",
    "LEVELS",
    "LogSetupError",
    "LogrusJSON",
    "LogrusText",
    "parse_level",
    "rfc3339",
    "setup",
]
