"""The HTML report: self-contained, every figure shown, no console errors (headless Chromium)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sim import load_scenario, run
from sim.cli import main
from sim.views.report import load_results, render_report, validation_checks, write_report
from tests.browser import CHROMIUM, SKIP_REASON, check_in_chromium
from tests.conftest import BASE


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("results") / "run"
    run(load_scenario(BASE), 24, seed=3, out=out, keep_patients=24, workers=2)
    write_report(out)
    return out


def test_report_is_self_contained(results: Path) -> None:
    text = (results / "report.html").read_text()
    assert "<!DOCTYPE html>" in text and "Key numbers" in text and "Built-in validation" in text
    assert not re.search(r"""(src|href)=["']?https?:""", text)  # nothing fetched from a network
    assert "docs/model.md" in text and load_scenario(BASE).hash in text
    assert "not a dosing aid" in text


def test_the_report_sets_harms_against_disease_control(results: Path) -> None:
    text = (results / "report.html").read_text()
    section = text.split("Trade-off: harms and disease control</h2>", 1)[1].split("<h2")[0]
    for row in ("median cumulative prednisone at week 52",
                "Relapse of interstitial lung disease events",
                "Serious infection events", "mean FVC change at the landmark",
                "mean Treg change at the landmark", "Primary analysis significant in"):  # fmt: skip
        assert row in section, row


def test_the_report_opens_with_a_summary_and_contents(results: Path) -> None:
    text = (results / "report.html").read_text()
    summary = text.split("<p class='summary'>", 1)[1].split("</p>", 1)[0]
    assert "simulated trials the target of 20 patients" in summary
    assert "mg of prednisone by week 52" in summary and "power" in summary
    contents = text.split("<nav>", 1)[1].split("</nav>", 1)[0]
    for heading in ("Key numbers", "Adverse events: incidence", "Screen failures",
                    "Enrolment by site", "Scenario, resolved"):  # fmt: skip
        anchor = re.search(rf"href='#([a-z0-9-]+)'>{re.escape(heading)}<", contents)
        assert anchor is not None, heading
        assert f'id="{anchor.group(1)}"' in text or f"id='{anchor.group(1)}'" in text, heading
    incidence = text.split("Adverse events: incidence</h2>", 1)[1].split("<h2", 1)[0]
    assert "Gastrointestinal intolerance" in incidence and "events per patient-year" in incidence
    assert "Xi&#x27;an" in text.split("Enrolment by site</h2>", 1)[1].split("<h2", 1)[0]
    assert "<details><summary>" in text  # the resolved scenario, collapsed


def test_validation_checks_pass_on_the_base_scenario(results: Path) -> None:
    scenario, result = load_results(results)
    checks = validation_checks(scenario, result)
    assert checks and all(c.status in ("pass", "warn") for c in checks), checks
    names = " ".join(c.name for c in checks)
    assert "MPA AUC0-12" in names and "eligib" in names


def test_report_command(results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.html"
    assert main(["report", str(results), "-o", str(out)]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "no such results folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "not a results folder of dosesim run" in capsys.readouterr().err


def test_render_escapes_scenario_text(results: Path) -> None:
    scenario, result = load_results(results)
    odd = scenario.model_copy(update={"description": "<script>alert(1)</script>"})
    assert "<script>alert(1)" not in render_report(odd, result, figures=[])


@pytest.mark.skipif(CHROMIUM is None, reason=SKIP_REASON)
def test_report_in_headless_chromium(results: Path, tmp_path: Path) -> None:
    """The page loads without errors, every figure decodes, and a screenshot is taken."""
    check_in_chromium(results / "report.html", tmp_path)


def test_compare_and_forecast_write_reports(tmp_path: Path) -> None:
    base = str(BASE)
    low = str(BASE.with_name("nct05129410_low_start.toml"))
    assert main(["compare", base, low, "--replicates", "8", "--out", str(tmp_path / "c")]) == 0
    page = (tmp_path / "c" / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("<img ") == 7
    assert "nct05129410_low_start" in page
    observed = BASE.with_name("example_observed_enrolment.csv")
    args = ["forecast", base, "--observed", str(observed), "--as-of", "2022-03-01",
            "--replicates", "10", "--out", str(tmp_path / "f")]  # fmt: skip
    assert main(args) == 0
    page = (tmp_path / "f" / "report.html").read_text()
    assert "P(target reached and last visit by 2023-11-30)" in page and page.count("<img ") == 4
    assert (tmp_path / "f" / "forecast_replicates.csv").exists()


def test_a_figure_without_its_data_is_a_visible_note(tmp_path: Path) -> None:
    """No kept patients: the four per-patient figures say why they are absent, in place."""
    out = tmp_path / "r"
    run(load_scenario(BASE), 6, seed=3, out=out, keep_patients=0)
    page = (write_report(out)).read_text()
    assert page.count("<p class='missing'>Not drawn: the run has no kept") == 4
    assert page.count("<img ") == 2  # the dose schedules and the milestones need no patients
    for title in ("Cumulative prednisone", "Enrolment", "MPA AUC0-12 against the target window"):
        assert f"<h3>{title}</h3><p class='missing'>" in page


def test_a_figure_that_cannot_be_drawn_is_an_error(results: Path) -> None:
    """A damaged table is not silently left out: the report names the figure and stops."""
    from sim.errors import DosesimError

    scenario, result = load_results(results)
    result.kept["patients"] = result.kept["patients"].drop(columns=["mpa_auc0_12_mg_h_per_l"])
    with pytest.raises(DosesimError, match="'MPA AUC0-12 against the target window' cannot be"):
        render_report(scenario, result)


def test_intervals_follow_the_level(results: Path, tmp_path: Path) -> None:
    assert main(["report", str(results), "-o", str(tmp_path / "80.html"), "--interval", "80"]) == 0
    page = (tmp_path / "80.html").read_text()
    assert "80 % interval over replicates" in page and "<th>10 %</th>" in page
    assert "Recruitment milestones" in page and "replicates reaching the target" in page
