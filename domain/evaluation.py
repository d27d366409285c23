"""Evaluation metrics and the quality gate that decides whether a branch may be promoted.

Pure functions over plain values, so a comparison between two environments is reproducible
from its inputs alone and can be tested without any service.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

# Absolute tolerance of the gate's comparisons: a ratio that is exactly the limit on paper
# (0.99 against 1.0 is -1%) comes out a few ulps beyond it in floating point.
EPSILON = 1e-12

# --- retrieval ---------------------------------------------------------------------------


def query_metrics(ranked: Sequence[str], judgments: Mapping[str, int], k: int) -> dict[str, float]:
    """Score one query's ranking against graded judgments, looking at the top ``k`` positions.

    Keys absent from ``judgments`` and grades <= 0 are not relevant. A key repeated in
    ``ranked`` keeps its position but only its first occurrence earns anything, so a
    result list padded with repeats is not rewarded twice.

    - ``recall@k``: relevant keys in the top k over all relevant keys; 0.0 when the query has
      no relevant key at all (nothing to find, and the mean stays defined).
    - ``ndcg@k``: gain ``2**grade - 1`` discounted by ``log2(rank + 1)``, over the ideal
      ordering of the judgments truncated to k; 0.0 when that ideal is 0.
    - ``mrr``: reciprocal rank of the first relevant key *within the top k* (0.0 if none),
      i.e. MRR@k; the key keeps the customary short name.
    """
    _check_k(k)
    seen: set[str] = set()
    dcg = 0.0
    found = 0
    first_relevant_rank: int | None = None
    for rank, key in enumerate(ranked[:k], start=1):
        if key in seen:
            continue
        seen.add(key)
        grade = judgments.get(key, 0)
        if grade <= 0:
            continue
        found += 1
        dcg += _gain(grade) / math.log2(rank + 1)
        if first_relevant_rank is None:
            first_relevant_rank = rank

    relevant_grades = sorted((g for g in judgments.values() if g > 0), reverse=True)
    ideal = sum(
        _gain(grade) / math.log2(rank + 1)
        for rank, grade in enumerate(relevant_grades[:k], start=1)
    )
    return {
        f"recall@{k}": found / len(relevant_grades) if relevant_grades else 0.0,
        f"ndcg@{k}": dcg / ideal if ideal > 0 else 0.0,
        "mrr": 1.0 / first_relevant_rank if first_relevant_rank is not None else 0.0,
    }


def retrieval_metrics(
    runs: Sequence[tuple[Sequence[str], Mapping[str, int]]],
    k: int,
    latencies_ms: Sequence[float],
) -> dict[str, float]:
    """Average :func:`query_metrics` over queries and summarise the search latencies.

    ``runs`` holds one ``(ranked, judgments)`` pair per query; ``latencies_ms`` one duration per
    timed search (usually one per query). ``latency_ms_p95`` is the nearest-rank percentile:
    an observed value, never an interpolation, so it is stable on small query sets.
    """
    _check_k(k)
    if not runs:
        raise ValueError("retrieval_metrics needs at least one query run, got none")
    if not latencies_ms:
        raise ValueError("retrieval_metrics needs at least one latency, got none")
    totals: dict[str, float] = {}
    for ranked, judgments in runs:
        for name, value in query_metrics(ranked, judgments, k).items():
            totals[name] = totals.get(name, 0.0) + value
    result = {name: total / len(runs) for name, total in totals.items()}
    ordered = sorted(float(v) for v in latencies_ms)
    n = len(ordered)
    result["latency_ms_mean"] = sum(ordered) / n
    # ceil(0.95 * n) - 1 in integer arithmetic, free of float rounding.
    result["latency_ms_p95"] = ordered[-(-95 * n // 100) - 1]
    result["queries"] = float(len(runs))
    return result


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be at least 1 (the cut-off of the ranking), got {k}")


def _gain(grade: int) -> float:
    return float(2**grade - 1)


# --- classification ----------------------------------------------------------------------


def classification_metrics(
    expected: Sequence[str | None], predicted: Sequence[str | None]
) -> dict[str, float]:
    """Accuracy and per-label precision/recall of a taxonomy's assignments.

    ``None`` means "no label": a missing prediction is wrong unless no label was expected
    either, and ``None`` is never reported as a label of its own. Per label ``L``,
    ``precision[L]`` is 0.0 when nothing was predicted as L and ``recall[L]`` is 0.0 when L
    was never expected, so every label present on either side gets both keys.
    """
    _check_pairs("classification_metrics", expected, predicted)
    labels = sorted({label for label in (*expected, *predicted) if label is not None})
    result: dict[str, float] = {
        "accuracy": sum(e == p for e, p in zip(expected, predicted, strict=True)) / len(expected),
        "documents": float(len(expected)),
    }
    for label in labels:
        tp = sum(e == label and p == label for e, p in zip(expected, predicted, strict=True))
        predicted_as = sum(p == label for p in predicted)
        expected_as = sum(e == label for e in expected)
        result[f"precision[{label}]"] = tp / predicted_as if predicted_as else 0.0
        result[f"recall[{label}]"] = tp / expected_as if expected_as else 0.0
    return result


def agreement(a: Sequence[str | None], b: Sequence[str | None]) -> float:
    """Fraction of documents two labelings agree on, ``None`` agreeing with ``None``.

    Compares two branches (or two runs) without ground truth: how much would promotion change.
    """
    _check_pairs("agreement", a, b)
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


def _check_pairs(name: str, left: Sequence[str | None], right: Sequence[str | None]) -> None:
    if len(left) != len(right):
        raise ValueError(
            f"{name} needs sequences of the same length, got {len(left)} and {len(right)}"
        )
    if not left:
        raise ValueError(f"{name} needs at least one document, got none")


# --- quality gate ------------------------------------------------------------------------

_RULES = ("min", "max", "min_change", "max_change")
_RELATIVE_RULES = ("min_change", "max_change")


@dataclass(frozen=True)
class Threshold:
    """Limits one metric must respect; any combination of absolute and relative rules.

    Relative rules compare ``(candidate - baseline) / baseline`` with the limit:
    ``min_change=-0.01`` means "no worse than -1%", ``max_change=0.2`` "at most +20%".
    """

    metric: str
    min: float | None = None
    max: float | None = None
    min_change: float | None = None
    max_change: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.metric, str) or not self.metric:
            raise ValueError(f"threshold metric must be a non-empty string, got {self.metric!r}")
        limits = {rule: getattr(self, rule) for rule in _RULES}
        if all(limit is None for limit in limits.values()):
            raise ValueError(
                f"threshold on {self.metric} has no rule; set at least one of {', '.join(_RULES)}"
            )
        for rule, limit in limits.items():
            if limit is not None and (isinstance(limit, bool) or math.isnan(limit)):
                raise ValueError(f"threshold on {self.metric}: {rule} must be a number")
        for low, high in (("min", "max"), ("min_change", "max_change")):
            low_limit, high_limit = limits[low], limits[high]
            if low_limit is not None and high_limit is not None and low_limit > high_limit:
                raise ValueError(
                    f"threshold on {self.metric}: {low} ({low_limit}) is greater than "
                    f"{high} ({high_limit}), so nothing could pass"
                )

    @property
    def is_relative(self) -> bool:
        return self.min_change is not None or self.max_change is not None


@dataclass(frozen=True)
class GateFailure:
    """One broken rule, with the numbers that broke it so a report needs no recomputation."""

    metric: str
    rule: str  # "min" | "max" | "min_change" | "max_change" | "missing"
    limit: float | None
    candidate: float | None
    baseline: float | None
    change: float | None  # relative change when a relative rule failed
    message: str


def relative_change(candidate: float, baseline: float) -> float:
    """``(candidate - baseline) / baseline``; against a zero baseline, 0.0 if the candidate is
    also 0, else +inf or -inf by the candidate's sign (any move away from nothing is unbounded).
    """
    if baseline == 0:
        if candidate == 0:
            return 0.0
        return math.inf if candidate > 0 else -math.inf
    return (candidate - baseline) / baseline


def check_gate(
    thresholds: Sequence[Threshold],
    candidate: Mapping[str, float],
    baseline: Mapping[str, float] | None,
) -> list[GateFailure]:
    """Every failure of every rule of every threshold; an empty list means the gate passes.

    All failures are reported, not the first one, so a single run shows everything to fix.
    Limits are inclusive (with a 1e-12 tolerance). A metric missing from the candidate, or a
    relative rule with no baseline (or a baseline lacking the metric), fails with rule
    ``"missing"`` instead of passing silently.
    """
    failures: list[GateFailure] = []
    for threshold in thresholds:
        failures.extend(_check_threshold(threshold, candidate, baseline))
    return failures


def _check_threshold(
    threshold: Threshold,
    candidate: Mapping[str, float],
    baseline: Mapping[str, float] | None,
) -> list[GateFailure]:
    metric = threshold.metric
    if metric not in candidate:
        return [
            _missing(
                threshold,
                None,
                None,
                f"{metric} is missing from the candidate's metrics; available: {_names(candidate)}",
            )
        ]
    value = float(candidate[metric])
    failures = _absolute_failures(threshold, value)
    if threshold.is_relative:
        failures.extend(_relative_failures(threshold, value, baseline))
    return failures


def _absolute_failures(threshold: Threshold, value: float) -> list[GateFailure]:
    """The ``min`` and ``max`` rules: the candidate's value alone against the limits."""
    metric = threshold.metric
    failures: list[GateFailure] = []
    if threshold.min is not None and not value >= threshold.min - EPSILON:
        failures.append(
            GateFailure(
                metric,
                "min",
                threshold.min,
                value,
                None,
                None,
                f"{metric} is {value:.4f}, below the floor of {threshold.min:.4f}",
            )
        )
    if threshold.max is not None and not value <= threshold.max + EPSILON:
        failures.append(
            GateFailure(
                metric,
                "max",
                threshold.max,
                value,
                None,
                None,
                f"{metric} is {value:.4f}, above the ceiling of {threshold.max:.4f}",
            )
        )
    return failures


def _relative_failures(
    threshold: Threshold, value: float, baseline: Mapping[str, float] | None
) -> list[GateFailure]:
    """The ``min_change`` and ``max_change`` rules: the candidate against the baseline."""
    metric = threshold.metric
    rules = " and ".join(r for r in _RELATIVE_RULES if getattr(threshold, r) is not None)
    if baseline is None:
        return [
            _missing(
                threshold,
                value,
                None,
                f"{metric} has a relative rule ({rules}) but there is no baseline to compare with",
            )
        ]
    if metric not in baseline:
        return [
            _missing(
                threshold,
                value,
                None,
                f"{metric} has a relative rule ({rules}) but is missing from the baseline's "
                f"metrics; available: {_names(baseline)}",
            )
        ]
    base = float(baseline[metric])
    change = relative_change(value, base)
    failures: list[GateFailure] = []
    if threshold.min_change is not None and not change >= threshold.min_change - EPSILON:
        failures.append(
            _change_failure(threshold, "min_change", threshold.min_change, value, base, change)
        )
    if threshold.max_change is not None and not change <= threshold.max_change + EPSILON:
        failures.append(
            _change_failure(threshold, "max_change", threshold.max_change, value, base, change)
        )
    return failures


def _change_failure(
    threshold: Threshold, rule: str, limit: float, candidate: float, baseline: float, change: float
) -> GateFailure:
    message = _change_message(threshold.metric, rule, limit, candidate, baseline, change)
    return GateFailure(threshold.metric, rule, limit, candidate, baseline, change, message)


def _missing(
    threshold: Threshold, candidate: float | None, baseline: float | None, message: str
) -> GateFailure:
    return GateFailure(threshold.metric, "missing", None, candidate, baseline, None, message)


def _names(metrics: Mapping[str, float]) -> str:
    return ", ".join(sorted(metrics)) if metrics else "none"


def _change_message(
    metric: str, rule: str, limit: float, candidate: float, baseline: float, change: float
) -> str:
    numbers = f"({baseline:.4f} -> {candidate:.4f})"
    direction = "rose" if change > 0 else "fell"
    if math.isinf(change):
        moved = f"{direction} from a zero baseline {numbers}"
    elif change == 0:
        moved = f"did not change against the baseline {numbers}"
    else:
        moved = f"{direction} {abs(change):.2%} against the baseline {numbers}"
    if rule == "min_change":
        allowed = (
            f"the gate allows a fall of at most {-limit:.2%}"
            if limit < 0
            else f"the gate requires a rise of at least {limit:.2%}"
        )
    else:
        allowed = (
            f"the gate allows a rise of at most {limit:.2%}"
            if limit >= 0
            else f"the gate requires a fall of at least {-limit:.2%}"
        )
    return f"{metric} {moved}; {allowed}"


def threshold_from_dict(d: Mapping[str, Any]) -> Threshold:
    """Build a threshold from configuration (JSON/YAML), rejecting typos instead of ignoring them.

    A misspelt rule name silently dropped would turn a gate into a no-op, hence the strictness.
    """
    allowed = {f.name for f in fields(Threshold)}
    unknown = sorted(str(key) for key in d if key not in allowed)
    if unknown:
        raise ValueError(
            f"unknown threshold key(s): {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )
    metric = d.get("metric")
    if not isinstance(metric, str) or not metric:
        raise ValueError(f"threshold key 'metric' must be a non-empty string, got {metric!r}")
    limits: dict[str, float | None] = {}
    for rule in _RULES:
        raw = d.get(rule)
        if raw is None:
            limits[rule] = None
        elif isinstance(raw, bool) or not isinstance(raw, int | float) or math.isnan(raw):
            raise ValueError(f"threshold key '{rule}' must be a number, got {raw!r}")
        else:
            limits[rule] = float(raw)
    return Threshold(metric=metric, **limits)


def failure_as_dict(f: GateFailure) -> dict[str, Any]:
    """Plain dict for JSON reports and events: JSON has no infinity, so an infinite
    ``change`` (against a zero baseline) becomes None, and the message says why."""
    return {
        key: None if isinstance(value, float) and not math.isfinite(value) else value
        for key, value in asdict(f).items()
    }
