"""The figures' shared style: the fan's fast path draws what the NaN-aware one draws."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from sim.views.figure_style import fan


def _drawn(ax: Axes) -> list[np.ndarray]:
    """Every array the fan put on the axes: the bands' outlines, then the median line."""
    bands = [np.asarray(c.get_paths()[0].vertices) for c in ax.collections]
    return [*bands, *(np.asarray(line.get_xydata()) for line in ax.lines)]


@settings(max_examples=60, deadline=None)
@given(
    values=hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=40),
        elements=st.floats(-1e6, 1e6, allow_nan=False),
    ),
    level=st.sampled_from([0.5, 0.8, 0.9, 0.95]),
)
def test_fan_without_nan_draws_what_the_nan_aware_quantiles_draw(
    values: np.ndarray, level: float
) -> None:
    """With no NaN the fan takes np.quantile and np.median; a row of NaN added (which the
    NaN-aware quantiles leave out) takes the plain path. Both draw the same numbers, bit
    for bit."""
    x = np.arange(values.shape[1], dtype=np.float64)
    with_nan = np.vstack([values, np.full((1, values.shape[1]), np.nan)])
    fast, plain = Figure().subplots(), Figure().subplots()
    fan(fast, x, values, "median", level)
    fan(plain, x, with_nan, "median", level)
    drawn_fast, drawn_plain = _drawn(fast), _drawn(plain)
    assert len(drawn_fast) == len(drawn_plain) == 3
    for a, b in zip(drawn_fast, drawn_plain, strict=True):
        np.testing.assert_array_equal(a, b)
