"""Numbers as people read them: `15.8k tokens/s`, `1.2 GB`, `2m05s`; one place for every
printed rate, size and duration."""

from __future__ import annotations


def number(x: float) -> str:
    """Three significant digits, with k, M, G, T above a thousand (`15.8k`, `1.2M`)."""
    if x != x or x in (float("inf"), float("-inf")):
        return str(x)
    if abs(x) < 999.5:
        return f"{x:.3g}" if isinstance(x, float) else str(x)
    for unit in "kMGT":
        x /= 1000
        if abs(x) < 999.5 or unit == "T":
            return f"{x:.3g}{unit}"
    raise AssertionError("unreachable")


def rate(per_s: float, unit: str) -> str:
    """`15.8k tokens/s`."""
    return f"{number(per_s)} {unit}/s"


def size(n: float) -> str:
    """Bytes in binary units: `512 B`, `1.5 KB`, `3.2 GB`."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def seconds(s: float) -> str:
    """`0.4s`, `45.2s`, `2m05s`, `1h02m`."""
    if s < 60:
        return f"{s:.1f}s"
    m, sec = divmod(round(s), 60)
    if m < 60:
        return f"{m}m{sec:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"
