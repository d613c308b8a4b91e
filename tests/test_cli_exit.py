"""A command's exit skips the interpreter's final sweep over the objects its libraries loaded (nasattn.cli.quick_exit)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# An atexit handler registered before the command starts runs after the command's own handlers: it sees
# the heap as the interpreter's final collections will.
PROBE = """import atexit, gc, sys
atexit.register(lambda: print("frozen", gc.get_freeze_count(), "unfrozen", len(gc.get_objects()), file=sys.stderr))
sys.argv = ["nasattn", "--version"]
"""
LAUNCH = {
    "console script": "from nasattn.cli.entry import main\nmain()\n",
    "python -m nasattn.cli.main": "import runpy\nrunpy.run_module('nasattn.cli.main', run_name='__main__')\n",
}


@pytest.mark.parametrize("launch", list(LAUNCH))
def test_a_command_leaves_almost_nothing_for_the_final_collections(launch):
    res = subprocess.run([sys.executable, "-c", PROBE + LAUNCH[launch]], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert res.returncode == 0 and res.stdout.strip(), res.stdout + res.stderr  # --version printed
    words = res.stderr.split()
    frozen, unfrozen = int(words[words.index("frozen") + 1]), int(words[words.index("unfrozen") + 1])
    assert frozen > 20 * unfrozen, res.stderr  # without the freeze: frozen 0, every object left to sweep
