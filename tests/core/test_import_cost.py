"""`import threatlang` and `threatlang check` never import torch or a solver."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
HEAVY = ("torch", "gurobipy", "highspy", "pyscipopt", "ray", "onnx", "sklearn", "matplotlib")


def test_check_imports_nothing_heavy():
    code = (
        "import sys, threatlang.cli as c\n"
        f"assert c.main(['check', '-q', {str(ROOT / 'specs')!r}]) == 0\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == ""
