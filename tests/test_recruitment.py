"""Recruitment: trial milestones, observed-data errors, and the forecast command."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim import load_scenario, simulate_trial
from sim.cli import main
from sim.errors import DosesimError
from sim.forecast import forecast, read_observed, site_posteriors
from sim.scenario import Scenario
from sim.trial.trial import simulate_trials
from tests.conftest import BASE, SCENARIOS

SCENARIO = load_scenario(BASE)
FOUR = load_scenario(SCENARIOS / "nct05129410_four_sites.toml")
START = date(2020, 12, 1)


def test_trial_milestones_are_consistent() -> None:
    t = simulate_trial(SCENARIO, seed=3)
    m = t.milestones
    days = t.enrolment["trial_day"]
    assert m["enrolled"] == len(t.enrolment) == len(t.patients)
    assert m["first_patient_in_day"] == days.min() and m["last_patient_in_day"] == days.max()
    assert m["first_patient_in_date"] == START + timedelta(days=int(days.min()))
    lplv = (t.patients["enrol_day"] + t.patients["exit_day"]).max()
    assert m["last_patient_last_visit_day"] == lplv
    assert m["last_patient_in_day"] < lplv <= m["last_patient_in_day"] + 364
    assert sum(m["enrolled_per_site"].values()) == m["enrolled"]
    assert m["screened"] == len(t.cohort.screened)
    assert m["completed_by_deadline"] == (
        m["target_reached"] and lplv <= (date(2023, 11, 30) - START).days
    )
    # each patient's first event is their enrolment, on their enrolment day
    first = t.events.groupby("patient_id")["trial_day"].min().sort_index()
    assert list(first) == list(t.enrolment.sort_values("patient_id")["trial_day"])


def test_four_sites_recruit_faster_than_one() -> None:
    """Same target; three added sites: last patient in earlier on average (common seeds)."""
    one = [simulate_trial(SCENARIO, 5, r, simulate_patients=False) for r in range(60)]
    four = [simulate_trial(FOUR, 5, r, simulate_patients=False) for r in range(60)]
    mean = lambda ts: sum(t.milestones["last_patient_in_day"] for t in ts) / len(ts)  # noqa: E731
    assert mean(four) < mean(one)
    assert all(set(t.milestones["enrolled_per_site"]) == {"Xi'an", "site B", "site C", "site D"}
               for t in four)  # fmt: skip


def _csv(tmp_path: Path, text: str, name: str = "obs.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "site,enrolled_date\nXi'an,2020-11-01\n",
            "line 2: enrolled_date 2020-11-01 is before the start date",
        ),
        (
            "site,enrolled_date\nXi'an,2021-01-05\nXi'an,2022-09-01\n",
            "line 3: enrolled_date 2022-09-01 is after the as-of date",
        ),
        (
            "site,enrolled_date\nXian,2021-01-05\n",
            "line 2: site 'Xian' is not a site of the scenario; did you mean \"Xi'an\"?",
        ),
        (
            "site,enrolled_date\nXi'an,05/01/2021\n",
            "line 2: enrolled_date '05/01/2021' is not a date",
        ),
        ("site,date\nXi'an,2021-01-05\n", "line 1: missing column(s) enrolled_date"),
        ("centre;when\nXi'an;2021-01-05\n", "missing column(s) site, enrolled_date"),
        ("site,enrolled_date\nXi'an,\n", "line 2: needs an enrolled_date"),
        (
            "site,enrolled_date,screened_date\nXi'an,2021-01-05,2021-02-01\n",
            "line 2: screened_date is after enrolled_date",
        ),
    ],
)
def test_bad_observed_data_names_the_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(DosesimError) as err:
        read_observed(_csv(tmp_path, text), SCENARIO, date(2022, 6, 1))
    assert message in str(err.value)


def test_not_a_csv_file(tmp_path: Path) -> None:
    binary = tmp_path / "x.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")
    with pytest.raises(DosesimError, match="not a CSV file"):
        read_observed(binary, SCENARIO, date(2022, 6, 1))
    with pytest.raises(DosesimError, match="no such file"):
        read_observed(tmp_path / "missing.csv", SCENARIO, date(2022, 6, 1))
    with pytest.raises(DosesimError, match="before the trial start"):
        read_observed(None, SCENARIO, date(2019, 1, 1))


def test_every_problem_is_reported_together(tmp_path: Path) -> None:
    text = "site,enrolled_date\nXian,2021-01-05\nXi'an,2019-01-01\nXi'an,2021-02-30\n"
    with pytest.raises(DosesimError) as err:
        read_observed(_csv(tmp_path, text), SCENARIO, date(2022, 6, 1))
    assert [line.split(":")[1].strip() for line in str(err.value).splitlines()] == [
        "line 2",
        "line 3",
        "line 4",
    ]


def test_screened_counts_are_read(tmp_path: Path) -> None:
    text = (
        "site,enrolled_date,screened_date\n"
        "Xi'an,2021-01-05,2021-01-02\n"
        "Xi'an,,2021-01-10\n"
        "Xi'an,2021-03-01,\n"
    )
    obs = read_observed(_csv(tmp_path, text), SCENARIO, date(2022, 6, 1))
    assert obs.enrolments == [(0, 35.0), (0, 90.0)]
    assert obs.screened == {0: 3}


def test_forecast_counts_observed_patients_and_stops_at_the_target(tmp_path: Path) -> None:
    rows = "".join(f"Xi'an,{START + timedelta(days=20 * i + 5)}\n" for i in range(18))
    path = _csv(tmp_path, "site,enrolled_date\n" + rows)
    f = forecast(SCENARIO, path, date(2022, 1, 1), replicates=20, seed=2)
    assert f.summary["observed_enrolled"] == 18
    assert (f.replicates["enrolled"] <= 20).all()
    assert (f.replicates["last_patient_in_day"] >= 18 * 20 - 15).all()


def test_forecast_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _csv(tmp_path, "site,enrolled_date\nXi'an,2021-01-20\nXi'an,2021-04-11\n")
    args = ["forecast", str(BASE), "--observed", str(path), "--as-of", "2021-06-01",
            "--replicates", "40", "--seed", "3"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "enrolled so far: 2 of 20" in out and "intervals are 90 % of replicates" in out
    assert "site 0 Xi'an: prior 2.00" in out and "posterior" in out and "2 enrolled in 182" in out
    assert "target of 20 by the enrolment deadline 2023-11-30: reached in" in out
    assert "day the target is reached: median" in out and "(90 %:" in out
    assert "replicates reaching the target" in out and "last patient in median" in out
    assert "P(target reached and last visit by 2023-11-30)" in out
    assert "site(s) like the prior" in out or "no more sites needed" in out
    assert "forecast-2021-06-01" in out  # the default folder: one per cut-off
    # the same forecast again at another interval: the same data, so the folder is rewritten
    assert main([*args, "--interval", "80"]) == 0
    assert "(80 %:" in capsys.readouterr().out


def test_design_stage_forecast_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["forecast", str(BASE), "--replicates", "30", "--seed", "1"]) == 0
    assert "design-stage forecast as of 2020-12-01" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--observed", "x.csv"], "--observed needs --as-of"),
        (["--observed", "missing.csv", "--as-of", "2021-06-01"], "no such file"),
    ],
)
def test_forecast_command_errors(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["forecast", str(BASE), "--replicates", "5", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_forecast_bad_date_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["forecast", str(BASE), "--as-of", "June 2021"])
    assert exc.value.code == 2
    assert "is not a date" in capsys.readouterr().err


def test_piecewise_site_rate() -> None:
    """A site whose rate drops to 0 from day 200 screens nobody after day 200; the
    arrival after t solves the cumulative intensity exactly across the change."""
    from sim.scenario import Site
    from sim.trial.sites import _next_arrival

    site = Site(
        name="A",
        activation_day=0.0,
        screening_rate_per_month=3.0,
        rate_changes=[
            {"from_day": 100.0, "multiplier": 2.0},
            {"from_day": 200.0, "multiplier": 0.0},
        ],
    )
    # rate 0.1/day before day 100, 0.2 after: from day 90 an intensity of 3 is reached at
    # 90 + 1 / 0.1 = 100 (1 used), then 2 more at 0.2/day -> day 110
    assert _next_arrival(90.0, 3.0, 0.1, site) == pytest.approx(110.0)
    assert _next_arrival(190.0, 5.0, 0.1, site) == float("inf")
    overrides = {
        "recruitment.rate_model": "poisson",
        "recruitment.sites": [site.model_dump(exclude_none=True)],
    }
    scenario = load_scenario(BASE, overrides)
    for r in range(20):
        t = simulate_trial(scenario, 3, r, simulate_patients=False)
        assert (t.enrolment["trial_day"] < 200).all()


def test_forecast_is_the_same_for_any_number_of_workers(tmp_path: Path) -> None:
    path = _csv(tmp_path, "site,enrolled_date\nXi'an,2021-01-20\nXi'an,2021-04-11\n")
    one = forecast(SCENARIO, path, date(2021, 6, 1), replicates=12, seed=4, max_extra_sites=1)
    two = forecast(
        SCENARIO, path, date(2021, 6, 1), replicates=12, seed=4, max_extra_sites=1, workers=2
    )
    pd.testing.assert_frame_equal(one.replicates, two.replicates)
    assert one.summary == two.summary and one.sites_needed == two.sites_needed


def test_a_site_full_before_a_reforecast_screens_nobody() -> None:
    """Observed enrolments can fill a site's cap before the forecast starts: that site
    then screens and enrols nobody more, while the others go on."""
    from sim.forecast import Observed
    from sim.trial.trial import simulate_replicate

    scenario = load_scenario(
        SCENARIOS / "nct05129410_four_sites.toml", {"recruitment.sites[0].cap": 2}
    )
    observed = Observed(as_of_day=100.0, enrolments=[(0, 10.0), (0, 50.0)], screened={})
    names = [s.name for s in scenario.recruitment.sites]  # type: ignore[union-attr]
    for r in range(20):
        trial = simulate_replicate(
            scenario, 5, r, True, observed=observed.enrolments, start_day=100.0
        )
        m = trial.milestones
        assert m["enrolled_per_site"][names[0]] == 2
        screened = trial.cohort.screened  # type: ignore[union-attr]
        assert not (screened["person"] // 1_000_000 == 0).any()
        assert m["enrolled"] == len(trial.patients)


@pytest.mark.parametrize("scenario", [SCENARIO, FOUR], ids=["one site", "four sites"])
@pytest.mark.parametrize("batch", [1, 3, 64])
def test_replicates_in_batches_equal_replicates_one_by_one(scenario: Scenario, batch: int) -> None:
    """simulate_trials draws sites' first people for many replicates at once: same results."""
    replicates = [5, 0, 7, 1, 2, 9, 3]
    tables = {0, 9}
    together = list(simulate_trials(scenario, 11, replicates, tables, batch=batch))
    for r, trial in zip(replicates, together, strict=True):
        alone = simulate_trial(scenario, 11, r, tables=r in tables)
        assert trial.milestones == alone.milestones
        assert trial.enrolment_rows == alone.enrolment_rows
        for key, value in alone.outcomes.items():
            np.testing.assert_array_equal(trial.outcomes[key], value)
        if r in tables:
            assert trial.cohort is not None and alone.cohort is not None
            pd.testing.assert_frame_equal(trial.cohort.patients, alone.cohort.patients)
            pd.testing.assert_frame_equal(trial.cohort.events, alone.cohort.events)
        else:
            assert trial.cohort is None


def test_replicates_in_batches_are_each_taken_once() -> None:
    with pytest.raises(ValueError, match="each replicate once"):
        list(simulate_trials(SCENARIO, 1, [0, 1, 0]))


def test_observed_data_must_fit_the_sites(tmp_path: Path) -> None:
    """No enrolment before a site can have opened, after the enrolment deadline, or past a
    site's cap: each would make its posterior wrong."""
    closes_2022 = load_scenario(SCENARIOS / "nct05129410_enrolment_closes_2022.toml")
    with pytest.raises(
        DosesimError, match="line 2: enrolled_date 2022-12-05 is after the enrolment"
    ):
        read_observed(_csv(tmp_path, "site,enrolled_date\nXi'an,2022-12-05\n"), closes_2022,
                      date(2023, 1, 1))  # fmt: skip
    with pytest.raises(DosesimError, match="before site 'site B' can have opened"):
        read_observed(_csv(tmp_path, "site,enrolled_date\nsite B,2021-01-05\n"), FOUR,
                      date(2022, 1, 1))  # fmt: skip
    capped = load_scenario(BASE, {"recruitment.sites[0].cap": 2})
    rows = "site,enrolled_date\n" + "".join(f"Xi'an,2021-0{m}-01\n" for m in (2, 3, 4))
    with pytest.raises(
        DosesimError, match='line 4: site "Xi\'an" has more enrolments than its cap'
    ):
        read_observed(_csv(tmp_path, rows), capped, date(2022, 1, 1))


def test_a_screening_log_covers_every_site(tmp_path: Path) -> None:
    """With a screened_date column, a site without a row screened nobody: it learns from
    zero screened, not from zero enrolled (which would weigh its open time by p)."""
    text = "site,enrolled_date,screened_date\nXi'an,2021-01-05,2021-01-02\n"
    obs = read_observed(_csv(tmp_path, text), FOUR, date(2022, 1, 1))
    assert obs.screened == {0: 1, 1: 0, 2: 0, 3: 0}
    b = site_posteriors(FOUR, obs)[1]
    assert b.screened and b.factor == 1.0 and b.count == 0 and b.updated


def test_no_exposure_after_enrolment_closes(tmp_path: Path) -> None:
    """The posterior stops learning at the enrolment deadline: a later as-of date with the
    same data gives the same belief."""
    closes_2022 = load_scenario(SCENARIOS / "nct05129410_enrolment_closes_2022.toml")
    path = _csv(tmp_path, "site,enrolled_date\nXi'an,2021-03-01\nXi'an,2022-02-01\n")
    beliefs = [
        site_posteriors(closes_2022, read_observed(path, closes_2022, day))[0]
        for day in (date(2022, 12, 1), date(2023, 6, 1))
    ]
    assert beliefs[0].mean_per_month() == beliefs[1].mean_per_month()


def test_design_stage_forecast_says_why_the_prior_is_kept(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["forecast", str(BASE), "--as-of", "2022-06-01", "--replicates", "4"]) == 0
    out = capsys.readouterr().out
    assert "no observed data: prior kept" in out and "not open" not in out
