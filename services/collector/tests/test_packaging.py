"""The collector installs and runs without torch (it shares a small box with people, not a GPU)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys


def test_torch_is_not_installed_in_the_collector_venv() -> None:
    assert importlib.util.find_spec("torch") is None


def test_the_collector_imports_without_pulling_in_heavy_ml_packages() -> None:
    code = "import sys, prefloop_collector.cli; print(sorted(m for m in ('torch', 'transformers', 'trl') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
