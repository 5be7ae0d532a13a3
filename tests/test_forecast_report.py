"""The forecast's report: enrolment seen then predicted on dates, each site's prior and
posterior, P(completing) against sites added, regenerated from the folder."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim.cli import main
from sim.forecast import SEARCH_PROBABILITY, forecast
from sim.scenario import load_scenario
from sim.views.forecast_plots import predicted_counts
from tests.browser import CHROMIUM, SKIP_REASON, check_in_chromium
from tests.conftest import BASE

OBSERVED = BASE.with_name("example_observed_enrolment.csv")
AS_OF = "2022-03-01"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("forecast") / "f"
    argv = ["forecast", str(BASE), "--observed", str(OBSERVED), "--as-of", AS_OF,
            "--replicates", "60", "--search-replicates", "40", "--seed", "7",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    return out


def test_every_replicate_starts_from_the_observed_enrolment(folder: Path) -> None:
    enrolments = pd.read_csv(folder / "forecast_enrolment.csv")
    summary = json.loads((folder / "summary.json").read_text())
    start = load_scenario(BASE).recruitment.start_date  # type: ignore[union-attr]
    seen = pd.to_datetime(pd.read_csv(OBSERVED)["enrolled_date"])
    observed_days = sorted((seen - pd.Timestamp(start)).dt.days.astype(float))
    as_of = summary["as_of_day"]
    for _, rows in enrolments.groupby("replicate"):
        assert list(rows["number"]) == list(range(1, len(rows) + 1))
        assert sorted(rows.loc[rows["trial_day"] <= as_of, "trial_day"]) == observed_days
        assert (np.diff(rows["trial_day"].to_numpy()) >= 0).all()
    assert set(enrolments["replicate"]) == set(range(60))


def test_the_fan_counts_agree_with_the_replicate_table(folder: Path) -> None:
    """On the enrolment deadline each replicate's count is its enrolled-by-the-deadline;
    on the as-of day it is the observed count."""
    enrolments = pd.read_csv(folder / "forecast_enrolment.csv")
    table = pd.read_csv(folder / "forecast_replicates.csv")
    summary = json.loads((folder / "summary.json").read_text())
    rec = load_scenario(BASE).recruitment
    assert rec is not None
    grid = np.array([summary["as_of_day"], rec.enrolment_deadline_day])
    counts = predicted_counts(enrolments, list(table["replicate"]), grid)
    assert (counts[:, 0] == summary["observed_enrolled"]).all()
    np.testing.assert_array_equal(counts[:, 1], table["enrolled"].to_numpy(dtype=float))


def test_the_sites_curve_is_the_search(folder: Path) -> None:
    summary = json.loads((folder / "summary.json").read_text())
    curve = pd.read_csv(folder / "forecast_sites.csv")
    table = pd.read_csv(folder / "forecast_replicates.csv")
    assert list(curve["extra_sites"]) == list(range(len(curve)))
    assert (curve["replicates"] == 40).all()
    # no added site: the first 40 of the forecast's own replicates, the same trials
    assert curve["probability"].iloc[0] == table["completed_by_deadline"].iloc[:40].mean()
    p = curve["probability"].to_numpy()
    np.testing.assert_allclose(curve["mcse"], np.sqrt(p * (1 - p) / 40))
    reaching = [k for k, q in zip(curve["extra_sites"], p, strict=True) if q >= SEARCH_PROBABILITY]
    needed = summary["sites_needed"]
    assert needed == (reaching[0] if reaching else None)
    if needed is not None:  # the curve goes two steps past it, within the search's limit
        assert len(curve) - 1 == min(summary["max_extra_sites"], needed + 2)


def test_the_curve_does_not_change_the_sites_needed() -> None:
    """Going past the sites needed adds points; the answer is the first step reaching 80 %."""
    scenario = load_scenario(BASE)
    f = forecast(scenario, OBSERVED, date(2022, 3, 1), 30, 7, search_replicates=30)
    first = next(
        (int(k) for k, q in zip(f.sites_curve["extra_sites"], f.sites_curve["probability"],
                                strict=True) if q >= SEARCH_PROBABILITY), None)  # fmt: skip
    assert f.sites_needed == first
    if first:
        assert f.sites_needed_probability == f.sites_curve["probability"].iloc[first]


def test_the_report_shows_the_forecast(folder: Path) -> None:
    page = (folder / "report.html").read_text()
    text = re.sub(r"<[^>]+>", " ", page)
    for heading in ("Milestones", "Sites: screening rates", "Added sites", "Manifest",
                    "Enrolment: seen, then predicted", "Sites: prior and posterior rates",
                    "Finishing on time against sites added"):  # fmt: skip
        assert heading in text, heading
    assert page.count("<img ") == 4 and "Not drawn" not in page
    summary = json.loads((folder / "summary.json").read_text())
    posterior = summary["sites"][0]["posterior"]
    assert f"{posterior['mean_per_month']:.2f} ({posterior['low_per_month']:.2f} to" in page
    assert f"As of {AS_OF}, 8 of 20 patients are enrolled." in text


def test_dosesim_report_remakes_it(folder: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    out = tmp_path / "again.html"
    assert main(["report", str(folder), "-o", str(out)]) == 0
    strip = re.compile(r"made \d{4}-\d\d-\d\d \d\d:\d\d UTC")
    assert strip.sub("", out.read_text()) == strip.sub("", (folder / "report.html").read_text())
    assert main(["report", str(folder), "-o", str(out), "--interval", "80"]) == 2
    assert "run dosesim forecast again with --interval" in capsys.readouterr().err


@pytest.mark.skipif(CHROMIUM is None, reason=SKIP_REASON)
def test_forecast_report_in_headless_chromium(folder: Path, tmp_path: Path) -> None:
    check_in_chromium(folder / "report.html", tmp_path)
