"""Specification of the evaluation metrics and quality gate, checked against hand computations."""

from __future__ import annotations

import math

import pytest

from domain.evaluation import (
    GateFailure,
    Threshold,
    agreement,
    check_gate,
    classification_metrics,
    failure_as_dict,
    query_metrics,
    retrieval_metrics,
    threshold_from_dict,
)

# --- retrieval: a fixed 3-query set, k = 3 ----------------------------------------------------

# Q1: the only relevant key in the top 3 is "a" (grade 2) at rank 2; "c" and "z" are missed.
Q1 = (["x", "a", "b", "c"], {"a": 2, "b": 0, "c": 1, "z": 1})
# Q2: "p" is repeated at rank 2; only its first occurrence (rank 1) counts.
Q2 = (["p", "p", "q", "r"], {"p": 1, "q": 2})
# Q3: nothing relevant to find.
Q3 = (["m", "n"], {"m": 0})

# DCG(Q1) = (2^2-1)/log2(2+1) = 3/1.5850 = 1.8928
# IDCG(Q1) = grades [2,1,1]: 3/log2(2) + 1/log2(3) + 1/log2(4) = 3 + 0.6309 + 0.5 = 4.1309
NDCG_Q1 = (3 / math.log2(3)) / (3 + 1 / math.log2(3) + 1 / math.log2(4))  # = 0.4582
# DCG(Q2) = p@1: (2^1-1)/log2(2) + q@3: (2^2-1)/log2(4) = 1 + 1.5 = 2.5
# IDCG(Q2) = grades [2,1]: 3/log2(2) + 1/log2(3) = 3 + 0.6309 = 3.6309
NDCG_Q2 = 2.5 / (3 + 1 / math.log2(3))  # = 0.6885


def test_query_with_a_relevant_key_at_rank_two_scores_partial_recall_ndcg_and_half_mrr() -> None:
    assert query_metrics(*Q1, k=3) == {
        "recall@3": pytest.approx(1 / 3),  # found {a} of relevant {a, c, z}
        "ndcg@3": pytest.approx(NDCG_Q1),  # 1.8928 / 4.1309 = 0.4582
        "mrr": pytest.approx(1 / 2),  # first relevant at rank 2
    }


def test_a_repeated_key_keeps_its_slot_but_earns_nothing_the_second_time() -> None:
    assert query_metrics(*Q2, k=3) == {
        "recall@3": pytest.approx(1.0),  # found {p, q} of {p, q}
        "ndcg@3": pytest.approx(NDCG_Q2),  # 2.5 / 3.6309 = 0.6885 (not (1+0.6309+1.5)/3.6309)
        "mrr": pytest.approx(1.0),  # "p" at rank 1
    }


def test_query_without_relevant_keys_scores_zero_everywhere() -> None:
    assert query_metrics(*Q3, k=3) == {"recall@3": 0.0, "ndcg@3": 0.0, "mrr": 0.0}


def test_keys_are_named_after_k() -> None:
    assert set(query_metrics(*Q1, k=10)) == {"recall@10", "ndcg@10", "mrr"}


def test_mrr_only_looks_within_the_top_k() -> None:
    # "c" (the first relevant key) sits at rank 4, beyond k = 3.
    metrics = query_metrics(["x", "y", "w", "c"], {"c": 1}, k=3)
    assert metrics["mrr"] == 0.0
    assert query_metrics(["x", "y", "w", "c"], {"c": 1}, k=4)["mrr"] == pytest.approx(1 / 4)


def test_perfect_ranking_has_ndcg_one() -> None:
    # Ranked by grade desc: DCG == IDCG.
    assert query_metrics(["q", "p"], {"p": 1, "q": 2}, k=2)["ndcg@2"] == pytest.approx(1.0)


def test_ideal_dcg_is_truncated_to_k() -> None:
    # k = 1: DCG = (2^2-1)/log2(2) = 3; IDCG = best single grade 2 -> 3; nDCG = 1.
    # recall@1 = 1 of 2 relevant keys.
    metrics = query_metrics(["q", "p"], {"p": 1, "q": 2}, k=1)
    assert metrics == {"recall@1": pytest.approx(0.5), "ndcg@1": pytest.approx(1.0), "mrr": 1.0}


@pytest.mark.parametrize("k", [0, -1])
def test_k_below_one_is_rejected(k: int) -> None:
    with pytest.raises(ValueError, match="k must be at least 1"):
        query_metrics(*Q1, k=k)


def test_retrieval_metrics_average_the_queries_and_summarise_latency() -> None:
    metrics = retrieval_metrics([Q1, Q2, Q3], k=3, latencies_ms=[10.0, 30.0, 20.0])
    assert metrics == {
        "recall@3": pytest.approx(4 / 9),  # (1/3 + 1 + 0) / 3 = 0.4444
        "ndcg@3": pytest.approx((NDCG_Q1 + NDCG_Q2) / 3),  # (0.4582 + 0.6885 + 0) / 3 = 0.3822
        "mrr": pytest.approx(0.5),  # (1/2 + 1 + 0) / 3
        "latency_ms_mean": pytest.approx(20.0),  # (10 + 30 + 20) / 3
        "latency_ms_p95": 30.0,  # sorted [10, 20, 30], index ceil(0.95*3)-1 = 2
        "queries": 3.0,
    }


def test_latency_p95_is_nearest_rank() -> None:
    # 1..20 ms: index ceil(0.95*20)-1 = 18 -> 19 ms (not the maximum, not interpolated).
    latencies = [float(v) for v in range(20, 0, -1)]
    metrics = retrieval_metrics([Q1], k=3, latencies_ms=latencies)
    assert metrics["latency_ms_p95"] == 19.0
    assert metrics["latency_ms_mean"] == pytest.approx(10.5)  # 210 / 20


def test_retrieval_metrics_reject_an_empty_run_set() -> None:
    with pytest.raises(ValueError, match="at least one query"):
        retrieval_metrics([], k=3, latencies_ms=[1.0])


# --- classification ---------------------------------------------------------------------------

EXPECTED = ["cat", "cat", "dog", "dog", "bird", None]
PREDICTED = ["cat", "dog", "dog", None, "dog", None]


def test_classification_accuracy_and_per_label_precision_recall() -> None:
    assert classification_metrics(EXPECTED, PREDICTED) == {
        "accuracy": pytest.approx(0.5),  # right at 0, 2 and 5 (None == None): 3 / 6
        "documents": 6.0,
        "precision[bird]": 0.0,  # never predicted
        "recall[bird]": 0.0,  # 0 of 1 bird found
        "precision[cat]": pytest.approx(1.0),  # TP 1 (pos 0) / predicted cat 1
        "recall[cat]": pytest.approx(0.5),  # TP 1 / expected cat 2 (pos 0, 1)
        "precision[dog]": pytest.approx(1 / 3),  # TP 1 (pos 2) / predicted dog 3 (pos 1, 2, 4)
        "recall[dog]": pytest.approx(0.5),  # TP 1 / expected dog 2 (pos 2, 3; pos 3 got None)
    }


def test_a_label_only_predicted_has_zero_recall_and_none_is_not_a_label() -> None:
    metrics = classification_metrics([None, "a"], ["fish", "a"])
    assert metrics["accuracy"] == pytest.approx(0.5)  # only pos 1 right
    assert metrics["precision[fish]"] == 0.0  # TP 0 / predicted fish 1
    assert metrics["recall[fish]"] == 0.0  # fish never expected
    assert not any("None" in key for key in metrics)


def test_classification_rejects_mismatched_or_empty_inputs() -> None:
    with pytest.raises(ValueError, match="same length"):
        classification_metrics(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="at least one"):
        classification_metrics([], [])


def test_agreement_counts_matching_positions_with_none_agreeing_with_none() -> None:
    # agree at 0 ("x") and 2 (None, None); differ at 1 and 3 -> 2 / 4
    assert agreement(["x", "y", None, None], ["x", "z", None, "y"]) == pytest.approx(0.5)


def test_agreement_rejects_mismatched_or_empty_inputs() -> None:
    with pytest.raises(ValueError, match="same length"):
        agreement(["a"], [])
    with pytest.raises(ValueError, match="at least one"):
        agreement([], [])


# --- quality gate -----------------------------------------------------------------------------


def test_failing_relative_threshold_names_the_metric_and_keeps_the_numbers() -> None:
    failures = check_gate(
        [Threshold("ndcg@10", min_change=-0.01)],
        candidate={"ndcg@10": 0.5844},
        baseline={"ndcg@10": 0.61},
    )
    assert len(failures) == 1
    failure = failures[0]
    assert (failure.metric, failure.rule, failure.limit) == ("ndcg@10", "min_change", -0.01)
    assert failure.candidate == 0.5844
    assert failure.baseline == 0.61
    assert failure.change == pytest.approx(-0.0419672)  # (0.5844 - 0.61) / 0.61
    assert "ndcg@10" in failure.message
    assert "fell 4.20%" in failure.message
    assert "(0.6100 -> 0.5844)" in failure.message
    assert "1.00%" in failure.message


def test_passing_gate_returns_no_failures() -> None:
    thresholds = [
        Threshold("ndcg@10", min=0.5, min_change=-0.01),
        Threshold("latency_ms_p95", max_change=0.2),
    ]
    candidate = {"ndcg@10": 0.62, "latency_ms_p95": 110.0}  # +1.6%, +10%
    assert check_gate(thresholds, candidate, {"ndcg@10": 0.61, "latency_ms_p95": 100.0}) == []


def test_exactly_minus_one_percent_passes_despite_float_rounding() -> None:
    # On paper (0.99 - 1.0) / 1.0 = -0.01; in floats it lands just below.
    assert (0.99 - 1.0) / 1.0 < -0.01
    gate = [Threshold("recall@10", min_change=-0.01)]
    assert check_gate(gate, {"recall@10": 0.99}, {"recall@10": 1.0}) == []
    # A hair further is a real regression.
    assert len(check_gate(gate, {"recall@10": 0.9899}, {"recall@10": 1.0})) == 1


def test_limits_are_inclusive() -> None:
    assert check_gate([Threshold("m", min=0.5, max=0.5)], {"m": 0.5}, None) == []
    # (120 - 100) / 100 = +20%, exactly the ceiling
    assert check_gate([Threshold("lat", max_change=0.2)], {"lat": 120.0}, {"lat": 100.0}) == []


def test_absolute_floor_and_ceiling_fail_without_a_baseline() -> None:
    failures = check_gate(
        [Threshold("ndcg@10", min=0.7), Threshold("latency_ms_p95", max=200.0)],
        candidate={"ndcg@10": 0.6, "latency_ms_p95": 250.0},
        baseline=None,
    )
    assert [(f.metric, f.rule, f.limit, f.candidate) for f in failures] == [
        ("ndcg@10", "min", 0.7, 0.6),
        ("latency_ms_p95", "max", 200.0, 250.0),
    ]
    assert failures[0].message == "ndcg@10 is 0.6000, below the floor of 0.7000"
    assert failures[1].message == "latency_ms_p95 is 250.0000, above the ceiling of 200.0000"
    assert all(f.baseline is None and f.change is None for f in failures)


def test_metric_missing_from_candidate_is_a_failure_listing_available_metrics() -> None:
    failures = check_gate(
        [Threshold("ndcg@10", min=0.5)], candidate={"recall@10": 0.9, "mrr": 0.8}, baseline=None
    )
    assert [(f.metric, f.rule, f.limit, f.candidate) for f in failures] == [
        ("ndcg@10", "missing", None, None)
    ]
    assert "ndcg@10" in failures[0].message
    assert "mrr, recall@10" in failures[0].message


def test_relative_rule_without_baseline_is_a_missing_failure() -> None:
    failures = check_gate([Threshold("ndcg@10", min_change=-0.01)], {"ndcg@10": 0.6}, None)
    assert [(f.rule, f.candidate, f.baseline) for f in failures] == [("missing", 0.6, None)]
    assert "no baseline to compare with" in failures[0].message


def test_metric_missing_from_baseline_is_a_missing_failure() -> None:
    failures = check_gate(
        [Threshold("ndcg@10", max_change=0.1)], {"ndcg@10": 0.6}, {"recall@10": 0.9}
    )
    assert [f.rule for f in failures] == ["missing"]
    assert "baseline" in failures[0].message
    assert "recall@10" in failures[0].message


def test_every_broken_rule_is_reported_not_just_the_first() -> None:
    thresholds = [
        Threshold("ndcg@10", min=0.6, min_change=-0.01),
        Threshold("latency_ms_p95", max=200.0, max_change=0.2),
        Threshold("mrr", min=0.1),  # passes
    ]
    candidate = {"ndcg@10": 0.5, "latency_ms_p95": 300.0, "mrr": 0.4}
    baseline = {"ndcg@10": 0.61, "latency_ms_p95": 150.0, "mrr": 0.4}
    failures = check_gate(thresholds, candidate, baseline)
    assert [(f.metric, f.rule) for f in failures] == [
        ("ndcg@10", "min"),
        ("ndcg@10", "min_change"),  # (0.5 - 0.61) / 0.61 = -18.03%
        ("latency_ms_p95", "max"),
        ("latency_ms_p95", "max_change"),  # (300 - 150) / 150 = +100%
    ]
    assert failures[1].change == pytest.approx(-0.11 / 0.61)
    assert failures[3].change == pytest.approx(1.0)
    assert "rose 100.00%" in failures[3].message


def test_zero_baseline_gives_zero_or_infinite_change() -> None:
    gate = [Threshold("errors", max_change=0.5)]
    assert check_gate(gate, {"errors": 0.0}, {"errors": 0.0}) == []  # 0 -> 0: change 0
    (failure,) = check_gate(gate, {"errors": 2.0}, {"errors": 0.0})
    assert failure.change == math.inf  # 0 -> 2: +inf
    (failure,) = check_gate([Threshold("x", min_change=-0.5)], {"x": -1.0}, {"x": 0.0})
    assert failure.change == -math.inf  # 0 -> -1: -inf


def test_threshold_without_any_rule_is_rejected() -> None:
    with pytest.raises(ValueError, match="no rule"):
        Threshold("ndcg@10")


def test_threshold_whose_floor_exceeds_its_ceiling_is_rejected() -> None:
    with pytest.raises(ValueError, match="greater than"):
        Threshold("m", min=0.9, max=0.1)


def test_threshold_from_dict_builds_a_threshold() -> None:
    assert threshold_from_dict({"metric": "latency_ms_p95", "max": 200, "max_change": 0.2}) == (
        Threshold("latency_ms_p95", max=200.0, max_change=0.2)
    )


@pytest.mark.parametrize(
    ("document", "offending"),
    [
        ({"metric": "ndcg@10", "min_chnage": -0.01}, "min_chnage"),
        ({"metric": "ndcg@10", "max": "0.2"}, "max"),
        ({"metric": "ndcg@10", "min": True}, "min"),
        ({"metric": "ndcg@10", "min_change": float("nan")}, "min_change"),
        ({"min": 0.5}, "metric"),
        ({"metric": "ndcg@10"}, "no rule"),
    ],
)
def test_threshold_from_dict_rejects_bad_documents_naming_the_key(
    document: dict[str, object], offending: str
) -> None:
    with pytest.raises(ValueError, match=offending):
        threshold_from_dict(document)


def test_failure_as_dict_exposes_every_field() -> None:
    failure = GateFailure("m", "min", 0.5, 0.4, None, None, "m is 0.4000, below the floor")
    assert failure_as_dict(failure) == {
        "metric": "m",
        "rule": "min",
        "limit": 0.5,
        "candidate": 0.4,
        "baseline": None,
        "change": None,
        "message": "m is 0.4000, below the floor",
    }


def test_a_failure_as_a_dict_has_no_infinity_which_json_cannot_carry() -> None:
    gate = [Threshold(metric="latency", max_change=0.2)]
    (failure,) = check_gate(gate, {"latency": 5.0}, {"latency": 0.0})
    assert failure.change == math.inf
    assert failure_as_dict(failure)["change"] is None
    assert failure_as_dict(failure)["message"] == failure.message
