"""examples/moondev_style_loop.py runs its agent-shaped loop against the simulator, in each face."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "moondev_style_loop.py"


@pytest.mark.parametrize("face", ["solana", "aster", "hyperliquid"])
def test_the_example_enters_and_exits_in_each_face(face, capsys):
    spec = importlib.util.spec_from_file_location("moondev_style_loop", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--face", face])
    out = capsys.readouterr().out
    assert out.count("entry ok") >= 2 and "entry failed" not in out
    assert "cycle 3:" in out
