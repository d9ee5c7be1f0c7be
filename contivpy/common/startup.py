"""The cyclic garbage collector paused while a daemon starts (its time to the first answer).

Starting netmaster imports some 350 modules: hundreds of thousands of long-lived objects (code,
functions, classes, dicts). Every 700 new container objects the collector runs over the youngest
generation, and as the survivors pile up it also runs full collections over everything loaded so
far, although start-up creates almost no garbage cycles: about 7 % of netmaster's CPU until its
first answer (docs/benchmarks.md, "netmaster start-up").

``pause()`` (the first line of a daemon's entry point) turns the collector off; ``resume()`` turns
it on again and runs one collection right away, at a moment the daemon chooses (netmaster: one
second after its listeners are open, when the first answers are out): the one pass over the
start-up objects that the paused collector saved many of (about 8 ms of CPU for netmaster's ~60,000
objects; it finds ~1,300 garbage objects, mostly classes replaced by their ``slots=True`` copies).

Invariants: only a collector this module turned off is turned on again (a process that disabled
GC itself keeps it off); ``resume()`` is idempotent and a no-op without ``pause()``, so library
code (and tests running a daemon in-process) may call it freely. Nothing is frozen
(``gc.freeze``): start-up garbage is collected, and later collections work as usual.
"""

from __future__ import annotations

import gc

_state = {"paused": False}


def pause() -> None:
    """Turn the cyclic collector off for the start-up (if it is on)."""
    if gc.isenabled():
        gc.disable()
        _state["paused"] = True


def resume() -> None:
    """Turn the collector on again if ``pause()`` turned it off, and collect once."""
    if _state["paused"]:
        _state["paused"] = False
        gc.enable()
        gc.collect()


def paused() -> bool:
    return _state["paused"]


__all__ = ["pause", "resume", "paused"]
