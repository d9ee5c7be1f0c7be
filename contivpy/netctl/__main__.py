"""Entry point of the ``netctl`` command (the launcher bin/netctl; ``python -m contivpy.netctl``).

Kept minimal for start-up time: only ``sys`` here; everything else is imported by ``run``.
``exit_process`` is how the launcher ends the process: netctl has no threads, no atexit handlers
and writes its output unbuffered, so after a last flush it leaves with ``_exit`` and skips the
interpreter's finalisation (freeing every module and object: about 2 ms, a tenth of a command;
docs/benchmarks.md).
"""

import sys


def main() -> int:
    from contivpy.netctl.app import run

    return run(sys.argv)


def exit_process(code: int) -> None:
    """``sys.exit(code)`` without the interpreter's finalisation (the normal exit if a flush fails)."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        sys.exit(code)
    import posix

    posix._exit(code)


if __name__ == "__main__":
    exit_process(main())
