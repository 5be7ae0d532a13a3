"""Survival estimators: the Aalen-Johansen cumulative incidence under competing risks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["CumulativeIncidence", "aalen_johansen"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class CumulativeIncidence:
    """An Aalen-Johansen cumulative incidence function: a right-continuous step function.

    Attributes
    ----------
    time : numpy.ndarray
        0, then every distinct time with an event of any cause (time units of the input).
    estimate : numpy.ndarray
        :math:`\\hat F_k` from each ``time`` on (probability, 0 .. 1).
    standard_error : numpy.ndarray
        Its delta-method standard error.
    at_risk : numpy.ndarray
        Subjects at risk just before each ``time``.
    """

    time: FloatArray
    estimate: FloatArray
    standard_error: FloatArray
    at_risk: npt.NDArray[np.int64]

    def at(self, t: npt.ArrayLike) -> FloatArray:
        """:math:`\\hat F_k(t)`; 0 before the first time."""
        i = np.searchsorted(self.time, np.asarray(t, dtype=float), side="right") - 1
        return np.where(i >= 0, self.estimate[np.clip(i, 0, None)], 0.0)

    def se_at(self, t: npt.ArrayLike) -> FloatArray:
        """The standard error of :math:`\\hat F_k(t)`."""
        i = np.searchsorted(self.time, np.asarray(t, dtype=float), side="right") - 1
        return np.where(i >= 0, self.standard_error[np.clip(i, 0, None)], 0.0)


def aalen_johansen(times: npt.ArrayLike, causes: npt.ArrayLike, cause: int) -> CumulativeIncidence:
    r"""The Aalen-Johansen estimate of the cumulative incidence of one cause among competing ones.

    With distinct times :math:`t_j` at which any event happens, :math:`n_j` subjects
    at risk just before :math:`t_j`, :math:`d_j` events of any cause and
    :math:`d_{kj}` of cause :math:`k` there, and :math:`\hat S` the Kaplan-Meier
    estimate of being free of every cause,

    .. math:: \hat F_k(t) = \sum_{t_j \le t} \hat S(t_{j-1})\, d_{kj} / n_j .

    Unlike :math:`1 - \mathrm{KM}` with the other causes censored, this does not
    treat a subject who met a competing event as if they could still meet cause
    :math:`k`. The variance is the delta-method one (Collett 2015,
    *Modelling Survival Data in Medical Research*, 3rd ed., sec. 12.2.2;
    Marubini & Valsecchi 1995):

    .. math::
        \sum_{t_j \le t} \Big[ (\hat F_k(t) - \hat F_k(t_j))^2 \frac{d_j}{n_j (n_j - d_j)}
        + \hat S(t_{j-1})^2 \frac{d_{kj} (n_j - d_{kj})}{n_j^3}
        - 2 (\hat F_k(t) - \hat F_k(t_j)) \hat S(t_{j-1}) \frac{d_{kj}}{n_j^2} \Big].

    Ties: events at a time count before censorings at that time.

    Parameters
    ----------
    times : array_like of float
        Each subject's time of its first event or of censoring (>= 0, finite).
    causes : array_like of int
        Each subject's cause: 0 = censored, 1, 2, ... = the event that happened.
    cause : int
        The cause of interest (>= 1).

    Returns
    -------
    CumulativeIncidence
    """
    t = np.asarray(times, dtype=float)
    c = np.asarray(causes)
    if t.ndim != 1 or c.shape != t.shape:
        raise ValueError(f"times and causes must be 1-D of one length, got {t.shape}, {c.shape}")
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ValueError("times must be finite and >= 0")
    if c.size and (not np.issubdtype(c.dtype, np.integer) or c.min() < 0):
        raise ValueError("causes must be integers >= 0 (0 = censored)")
    if cause < 1:
        raise ValueError(f"cause must be >= 1 (0 means censored), got {cause}")
    distinct, where = np.unique(t, return_inverse=True)
    leaving = np.bincount(where, minlength=distinct.size)
    n = (t.size - np.concatenate(([0], np.cumsum(leaving)))[:-1]).astype(np.int64)
    d = np.bincount(where, weights=(c != 0).astype(float), minlength=distinct.size)
    dk = np.bincount(where, weights=(c == cause).astype(float), minlength=distinct.size)
    event = d > 0
    time, n, d, dk = distinct[event], n[event], d[event], dk[event]
    nf = n.astype(float)
    s_before = np.concatenate(([1.0], np.cumprod(1.0 - d / nf)[:-1]))
    f = np.cumsum(s_before * dk / nf)
    # The variance at every t_m at once: expand the squares into cumulative sums.
    # Where all at risk have an event (n = d), no later time exists and F(t) - F(t_j)
    # is 0, so that term is 0.
    a = np.divide(d, nf * (nf - d), out=np.zeros_like(nf), where=nf > d)
    b = s_before**2 * dk * (nf - dk) / nf**3
    g = s_before * dk / nf**2
    var = (
        f**2 * np.cumsum(a)
        - 2 * f * np.cumsum(f * a)
        + np.cumsum(f**2 * a)
        + np.cumsum(b)
        - 2 * (f * np.cumsum(g) - np.cumsum(f * g))
    )
    return CumulativeIncidence(
        time=np.concatenate(([0.0], time)),
        estimate=np.concatenate(([0.0], f)),
        standard_error=np.sqrt(np.concatenate(([0.0], np.clip(var, 0.0, None)))),
        at_risk=np.concatenate(([t.size], n)).astype(np.int64),
    )
