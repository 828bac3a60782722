"""The device check's figures against issue 23's targets, read from its figures file.

Targets (to measure against, not tests): at least 400k seed-steps/s at 4096 seeds for the
benchmark MLP with Adam in fp32 on an H100; at least 250x the per-seed loop at 512 seeds; an lr
grid packed as one ensemble at least 3x faster than its cells one by one. A figure that is
missing (its step failed or timed out) is said to be missing, never guessed.

    python benchmarks/gpu_check_summary.py FIGURES_FILE
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

#: (what, how to find it in the figures, target, unit)
TARGETS = (
    ("Adam seed-steps/s at 4096 seeds", "rate:adam:4096", 400_000.0, "seed-steps/s"),
    ("Adam vs the per-seed loop at 512 seeds", "loop:adam:512", 250.0, "x"),
    ("packed lr grid vs its cells one by one", "packed", 3.0, "x"),
)

_ROW = re.compile(r"^\s*(\S+)\s+(\d+)\s+([\d.]+)\s+(\S+)\s+(\S+)\s", re.M)


def figures(text: str) -> dict[str, float]:
    """The figures the targets name, found in the benchmarks' printed tables."""
    out: dict[str, float] = {}
    for name, seeds, rate, loop, _ in _ROW.findall(text):
        out[f"rate:{name}:{seeds}"] = float(rate)
        if loop.endswith("x"):
            out[f"loop:{name}:{seeds}"] = float(loop[:-1])
    packed = re.search(r"^packed / separate: ([\d.]+)x", text, re.M)
    if packed:
        out["packed"] = float(packed.group(1))
    return out


def summary(text: str) -> list[str]:
    found = figures(text)
    lines = []
    for what, key, target, unit in TARGETS:
        if key not in found:
            lines.append(f"{what}: missing (target >= {target:g} {unit})")
            continue
        value = found[key]
        verdict = "met" if value >= target else "missed"
        lines.append(f"{what}: {value:g} {unit} (target >= {target:g}): {verdict}")
    return lines


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: gpu_check_summary.py FIGURES_FILE")
    print("\n".join(summary(Path(sys.argv[1]).read_text())))


if __name__ == "__main__":
    main()
