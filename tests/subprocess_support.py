"""The repository's root, and a fresh Python interpreter run from it, for tests that need a
process of their own (a settings module read from the environment, ``manage.py check``, a
probe that must start with nothing imported).

Shared by both suites.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def run_python(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float | None = 120,
    check: bool = False,
    python: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python args...`` in PROJECT_ROOT, its output captured as text; ``python`` is this
    test run's own interpreter unless another is given. ``env=None`` inherits ours."""
    return subprocess.run(  # noqa: S603 - our own interpreter, with the tests' own arguments
        [python or sys.executable, *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
    )
