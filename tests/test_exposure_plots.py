"""Exposure figures: a population's concentration bands, the typical patient, the AUC histogram."""

from __future__ import annotations

import math

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import Collection
from matplotlib.container import BarContainer
from matplotlib.figure import Figure

from sim import Scenario, build_schedules, load_scenario
from sim.exposure import (
    HOURS_PER_DAY,
    OralOneCompartment,
    concentration,
    daily_auc,
    draw_etas,
    mpa_auc0_12_at_target,
    pk_model,
    scenario_models,
)
from sim.streams import stream
from sim.views.exposure_plots import BAND_PATIENTS, population_profiles
from tests.conftest import BASE

WEIGHT = 70.0
LABELS = {"prednisolone": "prednisolone, from prednisone", "mpa": "MPA, from MMF"}
DRUG = {"prednisolone": "prednisone", "mpa": "mmf"}
NO_VARIABILITY = ["exposure.mpa.cv_cl=0", "exposure.mpa.cv_v=0", "exposure.prednisolone.cv_cl=0"]


def _population(scenario: Scenario, n: int, seed: int) -> tuple[Figure, np.ndarray]:
    """The figure ``dosesim exposure --patients n --seed seed --plot`` draws, and the AUCs."""
    assert scenario.exposure is not None
    mpa_etas = draw_etas(scenario.exposure.mpa, stream(seed, "exposure_patients", "mpa"), size=n)
    pred_etas = draw_etas(
        scenario.exposure.prednisolone, stream(seed, "exposure_patients", "prednisolone"), size=n
    )
    population = scenario_models(scenario, WEIGHT, {"prednisolone": pred_etas, "mpa": mpa_etas})
    auc = mpa_auc0_12_at_target(scenario, population["mpa"])
    typical = scenario_models(scenario, WEIGHT)
    schedules = build_schedules(scenario, WEIGHT)
    curves = {
        LABELS[m]: (typical[m], population[m], schedules[DRUG[m]]) for m in ("prednisolone", "mpa")
    }
    fig = population_profiles(
        curves, auc, (30.0, 60.0), f"{n} patients", band_patients=min(n, BAND_PATIENTS)
    )
    return fig, auc


@pytest.fixture(scope="module")
def drawn() -> tuple[Figure, np.ndarray]:
    return _population(load_scenario(BASE), 2000, 5)


def _panels(fig: Figure) -> dict[str, Axes]:
    """The panels by role: ``<moiety>_course``, ``<moiety>_close_up``, ``histogram``."""
    axes = fig.axes
    assert len(axes) == 5
    return {
        "prednisolone_course": axes[0],
        "prednisolone_close_up": axes[1],
        "mpa_course": axes[2],
        "mpa_close_up": axes[3],
        "histogram": axes[4],
    }


def _line(ax: Axes, label: str) -> tuple[np.ndarray, np.ndarray]:
    (line,) = [line for line in ax.lines if line.get_label() == label]
    return np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)


def _band(collection: Collection, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The low and high edge of a filled band at each ``x`` (from its outline's vertices)."""
    vertices = np.asarray(collection.get_paths()[0].vertices)
    index = np.searchsorted(x, vertices[:, 0])
    inside = (index < x.size) & np.isclose(x[np.minimum(index, x.size - 1)], vertices[:, 0])
    lo, hi = np.full(x.size, np.inf), np.full(x.size, -np.inf)
    np.minimum.at(lo, index[inside], vertices[inside, 1])
    np.maximum.at(hi, index[inside], vertices[inside, 1])
    assert np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)), "the band misses some x"
    return lo, hi


def _fan(ax: Axes, median_label: str) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """The median line and the fan's bands (outer, then 50 %) as drawn on ``ax``."""
    x, median = _line(ax, median_label)
    bands = [c for c in ax.collections if str(c.get_label()).endswith("% band")]
    bands = [c for c in bands if not str(c.get_label()).startswith("concentration")]
    assert [str(c.get_label()) for c in bands] == ["90 % band", "50 % band"]
    return median, [_band(c, x) for c in bands]


def test_the_figure_has_its_panels_and_every_patient_in_the_histogram(
    drawn: tuple[Figure, np.ndarray],
) -> None:
    fig, auc = drawn
    panels = _panels(fig)
    assert "over the first 500 of 2000 patients" in fig.get_suptitle()
    for moiety, label in LABELS.items():
        assert panels[f"{moiety}_course"].get_title(loc="left").startswith(label)
        assert panels[f"{moiety}_close_up"].get_title(loc="left") == "concentration, days 26-31"
        for role in ("course", "close_up"):
            assert panels[f"{moiety}_{role}"].get_ylabel() == "mg/L"
    hist = panels["histogram"]
    (bars,) = [c for c in hist.containers if isinstance(c, BarContainer)]
    assert sum(bar.get_height() for bar in bars) == auc.size == 2000
    assert "all 2000 patients" in hist.get_title(loc="left")
    labels = [str(line.get_label()) for line in hist.lines]
    assert labels == [f"median {np.median(auc):.1f} mg*h/L"]
    within = np.mean((auc >= 30) & (auc <= 60))
    window = [c for c in hist.patches if str(c.get_label()).startswith("window 30-60")]
    assert len(window) == 1 and f"{within:.0%} within" in str(window[0].get_label())


@pytest.mark.parametrize("moiety", ["prednisolone", "mpa"])
@pytest.mark.parametrize("role", ["course", "close_up"])
def test_the_median_lies_inside_the_bands_at_every_time(
    drawn: tuple[Figure, np.ndarray], moiety: str, role: str
) -> None:
    """As drawn: 5 % <= 25 % <= median <= 75 % <= 95 % at every time."""
    ax = _panels(drawn[0])[f"{moiety}_{role}"]
    label = "daily average: median" if role == "course" else "median"
    median, [(lo90, hi90), (lo50, hi50)] = _fan(ax, label)
    slack = 1e-12 * float(hi90.max())
    assert np.all(lo90 <= lo50 + slack) and np.all(lo50 <= median + slack)
    assert np.all(median <= hi50 + slack) and np.all(hi50 <= hi90 + slack)
    assert np.any(hi90 - lo90 > 0.1 * hi90.max())  # a real spread, not a line


def test_without_variability_the_bands_collapse_onto_the_typical_patient() -> None:
    """With every CV 0 (a scenario override) all patients are the typical patient: each
    band's edges and the median lie on the typical curve (to rounding)."""
    scenario = load_scenario(BASE, NO_VARIABILITY)
    fig, auc = _population(scenario, 50, 3)
    assert np.all(auc == auc[0])
    panels = _panels(fig)
    for moiety in LABELS:
        for role, label in (("course", "daily average: median"), ("close_up", "median")):
            ax = panels[f"{moiety}_{role}"]
            _, typical = _line(ax, "typical patient")
            median, bands = _fan(ax, label)
            tolerance = 1e-9 * float(typical.max())
            np.testing.assert_allclose(median, typical, rtol=0, atol=tolerance)
            for edge in (e for band in bands for e in band):
                np.testing.assert_allclose(edge, typical, rtol=0, atol=tolerance)


def _bracket(model: OralOneCompartment, eta: float) -> tuple[OralOneCompartment, ...]:
    """The typical patient with CL multiplied by exp(-eta) and by exp(+eta)."""
    cl = float(model.cl_l_per_h)
    return model.replaced(cl_l_per_h=cl * math.exp(-eta)), model.replaced(
        cl_l_per_h=cl * math.exp(eta)
    )


@pytest.mark.parametrize("moiety", ["prednisolone", "mpa"])
def test_with_variability_on_cl_alone_the_median_patient_is_the_typical_patient(
    moiety: str,
) -> None:
    """Reference: with V the same for all, the concentration at any time falls as CL
    rises (the central amount obeys A' = input - k A, the input free of k, so a larger
    k never gives more drug), and so does each day's average. The median over patients
    at each time is therefore the concentration of the patient with the median CL (for
    an even n, between the two middle ones), and the sample median of eta_CL ~ N(0,
    omega^2) has standard error omega sqrt(pi / (2 n)). So the drawn median lies
    between the typical curves with CL x exp(-/+ 4 SE), at every time: the tolerance
    comes from n = 500, not from the numbers simulated. (Prednisolone has no
    variability on V in the base scenario; MPA is given none by an override.)"""
    scenario = load_scenario(BASE, ["exposure.mpa.cv_v=0"])
    assert scenario.exposure is not None
    fig, _ = _population(scenario, 2000, 11)
    cv = getattr(scenario.exposure, moiety).cv_cl
    omega = math.sqrt(math.log1p(cv**2))
    eta = 4 * omega * math.sqrt(math.pi / (2 * BAND_PATIENTS))
    typical = scenario_models(scenario, WEIGHT)[moiety]
    schedule = build_schedules(scenario, WEIGHT)[DRUG[moiety]]
    high, low = _bracket(typical, eta)  # the lower CL gives the higher curve
    panels = _panels(fig)
    x, median = _line(panels[f"{moiety}_close_up"], "median")
    t_h = x * HOURS_PER_DAY
    slack = 1e-12 * float(median.max())
    assert np.all(concentration(low, schedule, t_h) - slack <= median)
    assert np.all(median <= concentration(high, schedule, t_h) + slack)
    _, daily = _line(panels[f"{moiety}_course"], "daily average: median")
    assert np.all(daily_auc(low, schedule) / HOURS_PER_DAY * (1 - 1e-12) <= daily)
    assert np.all(daily <= daily_auc(high, schedule) / HOURS_PER_DAY * (1 + 1e-12))
    # and not trivially: the bracket is narrow next to the band (a CV of 36-38 %)
    assert float(np.exp(eta) - 1) < 0.1 < cv


def test_population_profiles_rejects_bad_input() -> None:
    scenario = load_scenario(BASE)
    assert scenario.exposure is not None
    model = scenario_models(scenario, WEIGHT)["mpa"]
    patients = pk_model(scenario.exposure.mpa, WEIGHT, np.zeros((3, 2)))
    curves = {"MPA": (model, patients, build_schedules(scenario, WEIGHT)["mmf"])}
    with pytest.raises(ValueError, match="finite AUC"):
        population_profiles(curves, [np.nan], (30.0, 60.0), "x")
    with pytest.raises(ValueError, match="band_patients"):
        population_profiles(curves, [50.0], (30.0, 60.0), "x", band_patients=0)
