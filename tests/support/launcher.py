"""What an installed contivpy command looks like (tests of the launchers, bin/netctl)."""

from __future__ import annotations

from pathlib import Path


def is_launcher(path: Path) -> bool:
    """bin/netctl as shipped (#!/bin/sh), or pinned to the interpreter next to it."""
    first, _, rest = path.read_bytes().partition(b"\n")
    if first == b"#!/bin/sh":
        return True
    interp, _, flag = first.removeprefix(b"#!").decode().partition(" ")
    return (
        rest.startswith(b'""":"\n')
        and flag == "-S"
        and Path(interp).parent.resolve() == path.parent.resolve()
    )
