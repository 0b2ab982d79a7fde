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
- :func:`paired_power`, :func:`seeds_needed`, :func:`smallest_effect`: what a paired comparison can
  decide. With per-seed differences of std ``σ_d``, the verdict above over ``n`` seeds is a two-sided
  paired t-test at ``1 − level``; when the true mean difference is ``Δ`` its statistic follows a
  noncentral t with ``n − 1`` degrees of freedom and noncentrality ``Δ·√n / σ_d``, so the probability of
  a verdict other than "no difference" (the power) is ``P(|T| > t_{(1+level)/2, n−1})``.
  ``seeds_needed`` is the smallest ``n`` whose power reaches the goal (Cohen's tables: ``Δ/σ_d = 1`` →
  10 seeds, ``0.5`` → 34, at 80 % power and level 0.95); ``smallest_effect`` the ``Δ`` that ``n`` seeds
  decide with that power. ``σ_d`` is measured (the differences of two settings on shared seeds) or,
  for independent runs, ``√2·σ`` from one setting's spread ``σ``.
- :func:`std_ratio_interval`: whether one comparison's ``σ_d`` is smaller than another's (common random
  numbers, ``seed_by_name``): the ratio ``s_a / s_b`` of two sample stds with the F interval
  ``[r/√F_{(1+level)/2}(n_a−1, n_b−1), r·√F_{(1+level)/2}(n_b−1, n_a−1)]`` (independent normal samples).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

__all__ = [
    "paired_difference",
    "paired_power",
    "seeds_needed",
    "smallest_effect",
    "spread_verdict",
    "std_interval",
    "std_ratio_interval",
]


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
    sd = statistics.stdev(diffs)
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / n**0.5
    lo, hi = mean - half, mean + half
    verdict = "better" if lo > 0 else "worse" if hi < 0 else "no difference"
    return {"n": n, "mean": mean, "sd": sd, "lo": lo, "hi": hi, "verdict": verdict}


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


def std_ratio_interval(sd_a: float, n_a: int, sd_b: float, n_b: int, level: float = 0.95) -> dict:
    """``σ_a / σ_b`` from sample stds over ``n_a`` and ``n_b`` values: the ratio, its F interval at
    ``level`` (module docstring) and "smaller" / "larger" / "no difference" (whether it contains 1)."""
    from scipy import stats

    if min(n_a, n_b) < 2 or sd_a < 0 or sd_b <= 0:
        raise ValueError(
            f"std_ratio_interval: needs n >= 2 and sd_b > 0, got n {n_a}, {n_b} and sd {sd_a}, {sd_b}"
        )
    ratio = sd_a / sd_b
    q = 0.5 + level / 2
    lo = ratio / float(stats.f.ppf(q, n_a - 1, n_b - 1)) ** 0.5
    hi = ratio * float(stats.f.ppf(q, n_b - 1, n_a - 1)) ** 0.5
    verdict = "smaller" if hi < 1 else "larger" if lo > 1 else "no difference"
    return {"ratio": ratio, "lo": lo, "hi": hi, "verdict": verdict}


def spread_verdict(interval: dict, goal: float) -> str:
    """``"met"``, ``"not met"`` or ``"undecided"`` for the goal ``std ≤ goal`` (module docstring)."""
    if interval["lo"] is None:
        return "n < 2"
    return "met" if interval["hi"] <= goal else "not met" if interval["lo"] > goal else "undecided"


def paired_power(effect: float, sd_diff: float, n: int, level: float = 0.95) -> float:
    """Probability that ``n`` paired seeds give a verdict other than "no difference" when the true mean
    difference is ``effect`` and the per-seed differences have std ``sd_diff`` (module docstring)."""
    from scipy import stats

    if n < 2:
        raise ValueError(f"paired_power: n must be >= 2 seeds, got {n}")
    if sd_diff <= 0:
        raise ValueError(f"paired_power: sd_diff must be > 0, got {sd_diff}")
    df = n - 1
    t_crit = float(stats.t.ppf(0.5 + level / 2, df))
    nc = abs(effect) * n**0.5 / sd_diff
    power = float(stats.nct.sf(t_crit, df, nc) + stats.nct.cdf(-t_crit, df, nc))
    if math.isnan(power):  # scipy's noncentral t returns nan far in its tail: the normal limit is exact there
        power = float(stats.norm.sf(t_crit - nc) + stats.norm.cdf(-t_crit - nc))
    return min(1.0, power)


def seeds_needed(
    effect: float, sd_diff: float, power: float = 0.8, level: float = 0.95, max_seeds: int = 10_000
) -> int | None:
    """The fewest seeds (≥ 2) whose paired comparison decides ``effect`` with probability ``power``;
    None when more than ``max_seeds`` would be needed (``effect`` 0 never is decided)."""
    if effect == 0 or paired_power(effect, sd_diff, max_seeds, level) < power:
        return None
    lo, hi = 2, 2  # power grows with n: double until it reaches the goal, then bisect
    while paired_power(effect, sd_diff, hi, level) < power:
        lo, hi = hi + 1, min(2 * hi, max_seeds)
    while lo < hi:
        mid = (lo + hi) // 2
        if paired_power(effect, sd_diff, mid, level) >= power:
            hi = mid
        else:
            lo = mid + 1
    return lo


def smallest_effect(sd_diff: float, n: int, power: float = 0.8, level: float = 0.95) -> float:
    """The smallest true mean difference that ``n`` paired seeds decide with probability ``power``
    (in the metric's units, like ``sd_diff``)."""
    from scipy import optimize

    high = sd_diff
    while paired_power(high, sd_diff, n, level) < power:
        high *= 2
    return float(optimize.brentq(lambda e: paired_power(e, sd_diff, n, level) - power, 0.0, high, xtol=1e-6))
