"""The table ``make bench`` prints: one row per figure, its baseline, the ratio and the target."""

from __future__ import annotations

import datetime
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import cryptography
import django
import jwt


class Verdict(Enum):
    NONE = ""
    MET = "pass"
    MISSED = "**FAIL**"
    STRETCH_MET = "stretch met"
    STRETCH_MISSED = "stretch missed"


@dataclass(frozen=True)
class Row:
    measurement: str
    value: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""
    verdict: Verdict = Verdict.NONE


def ratio_row(
    measurement: str,
    value: float,
    unit: str,
    baseline_name: str,
    baseline: float,
    *,
    at_most: float | None = None,
    at_least: float | None = None,
    stretch: bool = False,
    digits: int = 1,
) -> Row:
    """A figure against its baseline, judged against ``at_most``/``at_least`` if given."""
    ratio = value / baseline
    target, verdict = "", Verdict.NONE
    if at_most is not None or at_least is not None:
        met = (at_most is None or ratio <= at_most) and (at_least is None or ratio >= at_least)
        target = f"≤ {at_most:g}x" if at_most is not None else f"≥ {at_least:g}x"
        if stretch:
            target = f"{target} (stretch)"
            verdict = Verdict.STRETCH_MET if met else Verdict.STRETCH_MISSED
        else:
            verdict = Verdict.MET if met else Verdict.MISSED
    return Row(
        measurement,
        f"{value:,.{digits}f} {unit}",
        f"{baseline_name} {baseline:,.{digits}f} {unit}",
        f"{ratio:.2f}x",
        target,
        verdict,
    )


def machine_description() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({model}), {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}, Django {django.get_version()}, "
        f"PyJWT {jwt.__version__}, cryptography {cryptography.__version__}"
    )


def render(rows: Sequence[Row], notes: Sequence[str], seconds: float) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = ("measurement", "value", "baseline (same run)", "ratio", "target", "result")
    lines = [
        f"entra_auth benchmark, {now}, {machine_description()}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * 3 + ["---"] * 2) + "|",
    ]
    for row in rows:
        cells = (row.measurement, row.value, row.baseline, row.ratio, row.target)
        lines.append("| " + " | ".join((*cells, row.verdict.value)) + " |")
    lines.append("")
    lines.extend(f"- {note}" for note in notes)
    missed = [row.measurement for row in rows if row.verdict is Verdict.MISSED]
    lines.append(
        f"- Run took {seconds:.0f} s. "
        + (f"Targets missed: {len(missed)}." if missed else "Every target met.")
    )
    return "\n".join(lines)


def any_failed(rows: Sequence[Row]) -> bool:
    return any(row.verdict is Verdict.MISSED for row in rows)
