"""Milestones as a planner reads them: censored quantiles, hand-computed summaries."""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.errors import DosesimError
from sim.trial.milestones import (
    censored_quantile,
    check_level,
    interval_label,
    level_quantiles,
    milestone_summary,
)
from sim.views.text import format_milestones

START = date(2020, 12, 1)
END = date(2023, 11, 30)

INF = math.inf


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([1.0, 2.0, 3.0, INF], 0.5, 2.5),  # h = 1.5: between 2 and 3
        ([1.0, 2.0, 3.0, INF], 2 / 3, 3.0),  # h = 2 exactly: the third value
        ([1.0, 2.0, 3.0, INF], 0.9, INF),  # h = 2.7: the upper neighbour is "later"
        ([INF, INF], 0.0, INF),
        ([5.0], 0.95, 5.0),
        ([], 0.5, math.nan),
    ],
)
def test_censored_quantile_by_hand(values: list[float], q: float, expected: float) -> None:
    got = censored_quantile(values, q)
    if math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == expected


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0, 5000, allow_nan=False), min_size=1, max_size=40),
    st.integers(0, 40),
    st.floats(0, 1),
)
def test_censored_quantile_is_numpys_where_it_exists(
    finite: list[float], n_inf: int, q: float
) -> None:
    """Without censoring it is numpy's linear quantile; with it, a day exactly when the
    quantile's position falls among the finite values, else "later" (inf)."""
    values = finite + [INF] * n_inf
    got = censored_quantile(values, q)
    upper = math.ceil((len(values) - 1) * q)  # the order statistic the linear rule reaches
    if upper < len(finite):  # both neighbours are days: numpy's answer with any stand-in
        stand_in = np.array(finite + [1e9] * n_inf)
        assert got == pytest.approx(float(np.quantile(stand_in, q)), rel=1e-12, abs=1e-9)
    else:  # it reaches a replicate that never got there: "later", however small its weight
        assert got == INF


def test_levels() -> None:
    assert level_quantiles(0.9) == pytest.approx((0.05, 0.95))
    assert interval_label(0.9) == "90 %" and interval_label(0.975) == "97.5 %"
    for bad in (0.0, 1.0, 90, -0.1, float("nan")):
        with pytest.raises(DosesimError, match="fraction in"):
            check_level(bad)


def _table() -> pd.DataFrame:
    """Ten replicates: six reach the target of 20 on days 100-600, four never do."""
    reached = [1] * 6 + [0] * 4
    lpi = [100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 900.0, 950.0, 1000.0, math.nan]
    return pd.DataFrame(
        {
            "enrolled": [20] * 6 + [12, 15, 19, 0],
            "target_reached": reached,
            "last_patient_in_day": lpi,
            "last_patient_last_visit_day": [d + 364 for d in lpi],
            "completed_by_deadline": [1, 1, 1, 1, 0, 0, 0, 0, 0, 0],
        }
    )


def test_milestone_summary_by_hand() -> None:
    m = milestone_summary(_table(), START, 20, END, END, 0.9)
    assert m["target_reached"]["p"] == 0.6
    assert m["target_reached"]["mcse"] == pytest.approx(math.sqrt(0.6 * 0.4 / 10))
    assert m["completed_by_deadline"]["p"] == 0.4
    ttt = m["time_to_target"]
    # all ten: [100, ..., 600, later x 4]; the median at h = 4.5 lies between 500 and 600
    assert ttt["median"]["day"] == 550.0
    assert ttt["median"]["date"] == (START + timedelta(days=550)).isoformat()
    assert ttt["low"]["day"] == pytest.approx(100 + 0.45 * 100)  # h = 0.45
    assert ttt["high"] == {"day": None, "date": None, "later": True}  # h = 8.55: later
    # among the six that reach it: the median of 100..600 is 350, not the pooled 550
    lpi = m["last_patient_in"]
    assert lpi["n"] == 6 and lpi["median"]["day"] == 350.0
    assert m["last_patient_last_visit"]["median"]["day"] == 350.0 + 364
    e = m["enrolled"]
    assert (e["median"], e["mean"], e["p_target"]) == (20.0, (120 + 46) / 10, 0.6)
    assert (e["low"], e["high"]) == (0.0, 20.0)  # counts that occurred, not interpolated
    lines = "\n".join(format_milestones(m))
    assert "reached in 60.0 % of trials (MCSE 15.5 %)" in lines
    assert f"to later than {END}" in lines
    assert "trials reaching the target (6)" in lines


def test_nobody_reaches_the_target() -> None:
    t = _table().assign(target_reached=0, completed_by_deadline=0)
    m = milestone_summary(t, START, 20, END, END)
    assert m["time_to_target"]["median"]["later"] and m["last_patient_in"]["n"] == 0
    assert "no trial reached the target" in "\n".join(format_milestones(m))
