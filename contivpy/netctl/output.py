"""stdout/stderr writing, the environment, and the logrus-style error line of the original netctl.

* ``out(text)`` writes UTF-8 bytes to stdout unchanged (no newline translation).
* ``log_error(msg)`` writes what ``logrus.Error(msg)`` wrote with the vendored logrus:
  not on a terminal ``time="<RFC3339>" level=error msg=<value> `` + newline, where the
  value is wrapped in double quotes, *unescaped*, unless it consists only of
  ``[A-Za-z0-9.-]`` (so a netmaster body's trailing newline stays inside the quotes);
  on a terminal ``ERRO[0000] <msg padded to 44>`` in red, as logrus did on a TTY.
  Timestamps are UTC (the original used local time; our hosts run in UTC).
* ``getenv(name)`` reads an environment variable without importing ``os`` (netctl's start-up
  never imports ``os``: its ``_collections_abc`` costs about 1 ms; docs/benchmarks.md).
* ``Exit(code)`` unwinds to ``main`` which returns the code; nothing calls ``sys.exit``
  deep inside, so tests can run ``main()`` in-process.
* A failed write to stdout (a full disk, an I/O error) raises ``OutputError`` with Go's wording
  ("write /dev/stdout: no space left on device"), which ``app.run`` reports as an error line and
  exit code 1; a closed pipe stays a ``BrokenPipeError`` (quiet exit, like ``head``).
"""

import sys


class Exit(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class OutputError(Exception):
    """stdout could not be written; the message is what Go's os.File reports."""


def _write(stream, text: str) -> None:
    buf = getattr(stream, "buffer", None)
    if buf is not None:
        stream.flush()
        buf.write(text.encode("utf-8", "surrogateescape"))
        buf.flush()
    else:  # e.g. a StringIO installed by a test
        stream.write(text)


def getenv(name: str, default: str = "") -> str:
    """``os.environ.get(name, default)``. Once ``os`` is loaded (a test, a library), its
    ``environ`` is the live copy and is read; before that nothing can have changed the
    process's environment, and ``posix.environ`` (the bytes ``os.environ`` is built from) is
    decoded the same way (file system encoding, surrogateescape)."""
    os = sys.modules.get("os")
    if os is not None:
        return os.environ.get(name, default)
    import posix

    enc = sys.getfilesystemencoding()
    value = posix.environ.get(name.encode(enc, "surrogateescape"))
    return default if value is None else value.decode(enc, "surrogateescape")


def out(text: str) -> None:
    try:
        _write(sys.stdout, text)
    except BrokenPipeError:
        raise
    except OSError as e:
        why = e.strerror or "input/output error"
        raise OutputError(f"write /dev/stdout: {why[:1].lower()}{why[1:]}") from None


def err(text: str) -> None:
    _write(sys.stderr, text)


_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.")


def _value(text: str) -> str:
    if text and all(c in _SAFE for c in text):
        return text
    if not text:
        return text
    return f'"{text}"'


def format_error_line(msg: str, now: float | None = None, tty: bool = False) -> str:
    if tty:
        return f"\x1b[31mERRO\x1b[0m[0000] {msg:<44} \n"
    import time

    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if now is None else now))
    return f"time={_value(stamp)} level=error msg={_value(msg)} \n"


def log_error(msg: str) -> None:
    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):
        tty = False
    err(format_error_line(msg, tty=tty))


def fail(code: int, msg: str, ctx=None) -> None:
    """``errExit``: log ``msg`` (if any), print the command's help if ``ctx`` is given, exit."""
    if msg:
        log_error(msg)
    if ctx is not None:
        ctx.show_help()
    raise Exit(code)


def go_slice(items) -> str:
    """Go ``%v`` / ``%s`` of a ``[]string``."""
    return "[" + " ".join(items or []) + "]"
