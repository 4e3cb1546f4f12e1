"""The code stays as ruff (pinned in the test extra) and the project's ruff config want it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    ruff = shutil.which("ruff") or shutil.which("ruff", path=str(Path(sys.executable).parent))
    assert ruff is not None, "ruff is missing: it comes with pip install -e '.[test]'"
    done = subprocess.run([ruff, "check", "--no-cache", "ib_nice_funcs", "tests", "bench",
                           "examples"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
