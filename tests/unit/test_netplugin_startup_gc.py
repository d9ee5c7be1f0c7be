"""netplugin's entry point pauses the cyclic GC for the start-up, as netmaster's does
(common/startup.py), and every way out of the start-up turns it on again.

A probe interpreter imports the entry point the way ``bin/netplugin`` runs it (``sys.argv[0]`` is
``netplugin``) and records ``gc.isenabled()``: off right after the import (before the other
imports), on again after ``--version`` and after a configuration error (exit 22), which return
without starting the agent. The running agent's resume (``STARTUP_GC_DELAY`` after ready) is checked
on a real agent by tests/integration/test_netplugin_observe.py
(``test_cyclic_gc_is_on_again_after_the_start_up``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_PROBE = r"""
import gc, io, json, sys, contextlib
sys.argv = ["netplugin"]
import contivpy.netplugin.__main__ as entry
out = {"at_import": gc.isenabled()}
with contextlib.redirect_stdout(io.StringIO()):
    out["version_rc"] = entry.main(["--version"])
out["after_version"] = gc.isenabled()
from contivpy.common import startup
startup.pause()  # paused again, as at the import: a configuration error must resume it
out["paused_again"] = not gc.isenabled()
with contextlib.redirect_stderr(io.StringIO()):
    out["bad_rc"] = entry.main(["--fwdmode", "nonsense"])
out["after_error"] = gc.isenabled()
print(json.dumps(out))
"""

_LIB = r"""
import gc, json, sys
sys.argv = ["pytest"]
import contivpy.netplugin.__main__
print(json.dumps({"at_import": gc.isenabled()}))
"""


def _run(src: str) -> dict:
    p = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_entry_point_pauses_gc_and_the_early_exits_resume_it():
    got = _run(_PROBE)
    assert got["at_import"] is False  # paused by the entry point, before the other imports
    assert got["version_rc"] == 0 and got["after_version"] is True
    assert got["paused_again"] is True
    assert got["bad_rc"] == 22 and got["after_error"] is True


def test_importing_the_module_as_a_library_leaves_gc_alone():
    assert _run(_LIB)["at_import"] is True
