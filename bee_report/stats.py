"""Small statistics for comparing profiles, on the standard library only.

``bee diff`` asks, for every function, whether its share of the events moved by more
than sampling noise explains. Each question is a two-proportion z-test; since one diff
asks hundreds of them, the p-values are then corrected for multiple comparisons
(Benjamini-Hochberg by default, Holm on request).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from bee_report.reporters.options import Correction


def two_proportion_z(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """Pooled two-proportion z-test of ``x1/n1`` against ``x2/n2``: ``(z, two-sided p)``.

    ``z = (p1 - p2) / sqrt(p (1 - p) (1/n1 + 1/n2))`` with the pooled proportion
    ``p = (x1 + x2) / (n1 + n2)``; the p-value is the two-sided normal tail
    ``erfc(|z| / sqrt 2)``. When the test is undefined (an empty side, or the pooled
    proportion is 0 or 1 so both sides agree exactly) the result is ``(0.0, 1.0)``: no
    evidence of a difference.
    """
    if n1 <= 0 or n2 <= 0:
        return 0.0, 1.0
    if not (0 <= x1 <= n1 and 0 <= x2 <= n2):
        raise ValueError(f"counts out of range: {x1}/{n1}, {x2}/{n2}")
    pooled = (x1 + x2) / (n1 + n2)
    variance = pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)
    if variance <= 0.0:
        return 0.0, 1.0
    z = (x1 / n1 - x2 / n2) / math.sqrt(variance)
    return z, math.erfc(abs(z) / math.sqrt(2.0))


def benjamini_hochberg(pvalues: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (as R's ``p.adjust(method="BH")``).

    Rejecting where the adjusted value is below ``alpha`` controls the expected share of
    false discoveries among the rejections at ``alpha``.
    """
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i], reverse=True)
    adjusted = [1.0] * m
    running = 1.0
    for rank_from_top, i in enumerate(order):
        rank = m - rank_from_top  # 1-based rank in ascending order
        running = min(running, pvalues[i] * m / rank)
        adjusted[i] = min(running, 1.0)
    return adjusted


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values (as R's ``p.adjust(method="holm")``).

    Rejecting where the adjusted value is below ``alpha`` controls the chance of even one
    false rejection at ``alpha``; stricter than Benjamini-Hochberg.
    """
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min((m - rank) * pvalues[i], 1.0))
        adjusted[i] = running
    return adjusted


def adjust(pvalues: Sequence[float], method: str = "bh") -> list[float]:
    """Adjust ``pvalues`` for multiple comparisons by ``method`` (a :class:`Correction`)."""
    if method == "bh":
        return benjamini_hochberg(pvalues)
    if method == "holm":
        return holm(pvalues)
    if method == "none":
        return [min(max(p, 0.0), 1.0) for p in pvalues]
    raise ValueError(f"unknown correction {method!r} (choose from {', '.join(Correction)})")
