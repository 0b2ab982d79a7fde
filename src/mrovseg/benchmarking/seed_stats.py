"""Statistics over training seeds for the lab (``scripts/seeds.py``): paired differences between two
settings and the interval of one setting's spread.

- :func:`paired_difference`: ``d_s`` = setting − reference on each seed ``s`` both ran; the mean of ``d``
  with its Student-t interval ``mean(d) ± t_{(1+level)/2, n-1} · sd(d) / √n`` and the verdict **better**
  (interval above 0), **worse** (below 0) or **no difference** (contains 0).
- :func:`std_interval`: the sample standard deviation ``s`` of one setting over ``n`` seeds with its
  chi-square interval ``[s·√((n−1)/χ²_{(1+level)/2, n−1}), s·√((n−1)/χ²_{(1−level)/2, n−1})]`` (the runs'
  metric taken as normal). Against a goal ``std ≤ g``: **met** when the whole interval is ≤ g, **not met**
  when it is all above g, **undecided** otherwise. Five seeds give an interval from 0.60 s to 2.87 s, so a
  point estimate on five seeds decides little.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

__all__ = ["paired_difference", "spread_verdict", "std_interval"]


def paired_difference(setting: dict[int, float], reference: dict[int, float], level: float = 0.95) -> dict:
    """Mean difference ``setting − reference`` over the seeds both have, its Student-t interval at
    ``level`` and the verdict (see the module docstring)."""
    from scipy import stats

    shared = sorted(set(setting) & set(reference))
    diffs = [setting[s] - reference[s] for s in shared]
    n = len(diffs)
    if n == 0:
        return {"n": 0, "mean": None, "lo": None, "hi": None, "verdict": "no shared seed"}
    mean = statistics.fmean(diffs)
    if n < 2:
        return {"n": 1, "mean": mean, "lo": None, "hi": None, "verdict": "n < 2"}
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * statistics.stdev(diffs) / n**0.5
    lo, hi = mean - half, mean + half
    verdict = "better" if lo > 0 else "worse" if hi < 0 else "no difference"
    return {"n": n, "mean": mean, "lo": lo, "hi": hi, "verdict": verdict}


def std_interval(values: Sequence[float], level: float = 0.95) -> dict:
    """Sample std (ddof = 1) of ``values`` and its chi-square interval at ``level``; ``lo``/``hi`` are
    None for fewer than 2 values."""
    from scipy import stats

    n = len(values)
    if n < 2:
        return {"n": n, "std": None, "lo": None, "hi": None}
    std = statistics.stdev(values)
    lo = std * ((n - 1) / float(stats.chi2.ppf(0.5 + level / 2, n - 1))) ** 0.5
    hi = std * ((n - 1) / float(stats.chi2.ppf(0.5 - level / 2, n - 1))) ** 0.5
    return {"n": n, "std": std, "lo": lo, "hi": hi}


def spread_verdict(interval: dict, goal: float) -> str:
    """``"met"``, ``"not met"`` or ``"undecided"`` for the goal ``std ≤ goal`` (module docstring)."""
    if interval["lo"] is None:
        return "n < 2"
    return "met" if interval["hi"] <= goal else "not met" if interval["lo"] > goal else "undecided"
