"""Text summaries as the commands print them, with the intervals a planner reads.

Every interval is the central ``level`` interval (default 90 %,
:data:`sim.trial.milestones.DEFAULT_LEVEL`), and every line says which.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from sim.trial.milestones import interval_label

if TYPE_CHECKING:
    from sim.compare import Comparison
    from sim.forecast import ForecastResult
    from sim.scenario import Scenario
    from sim.schedule import Schedule


def format_cohort_summary(summary: dict[str, Any]) -> str:
    """The summary as a few readable lines."""
    n = summary["patients"]
    burden = summary["cumulative_prednisone_mg_week52"]
    lines = [
        f"{n} patients enrolled of {summary['screened']} screened "
        f"({summary['patient_years']:.1f} patient-years on study)",
        f"cumulative prednisone at week 52: median {burden['median']:,.1f} mg "
        f"({interval_label(summary['level'])}: {burden['low']:,.1f}-{burden['high']:,.1f}; "
        f"n = {burden['n']} on study at week 52)",
        f"completed: {summary['completed_fraction']:.1%}; exits: "
        + ", ".join(f"{k} {v}" for k, v in sorted(summary["exits"].items())),
        "adverse events (patients with >= 1; events per patient-year):",
    ]
    for name, ae in summary["adverse_events"].items():
        lines.append(f"  {name:<22} {ae['patients_with']:6.1%}  {ae['per_patient_year']:.3f}")
    if summary["screen_failures"]:
        lines.append(
            "screen failures by criterion: "
            + ", ".join(f"{k} {v}" for k, v in summary["screen_failures"].items())
        )
    return "\n".join(lines)


def format_run_summary(summary: dict[str, Any]) -> str:
    """A few lines a planner reads first: steroid burden, retention, AEs, recruitment milestones."""
    m = summary["metrics"]
    label = interval_label(summary["level"])

    def interval(key: str, fmt: str = ",.0f") -> str:
        e = m.get(key)
        if e is None:
            return "no value in any replicate"
        dash = " to " if e["low"] < 0 or fmt.startswith("+") else "-"  # (no "-7.8--0.1")
        return f"median {e['median']:{fmt}} ({label}: {e['low']:{fmt}}{dash}{e['high']:{fmt}})"

    lines = [
        "steroid burden, per-trial median cumulative prednisone at week 52: "
        + interval("median_cumulative_prednisone_mg_week52")
        + " mg",
        "retention, completed fraction per trial: " + interval("completed_fraction", ".2f"),
    ]
    exits = ", ".join(
        f"{k} {m[k]['mean']:.2f}" for k in ("withdrawn", "died", "discontinued") if k in m
    )
    lines.append(f"exits per trial (mean): {exits}")
    aes = ", ".join(f"{k[3:]} {v['mean']:.2f}" for k, v in m.items() if k.startswith("ae_"))
    lines.append(f"adverse events per trial (mean): {aes}")
    lines += _disease_lines(summary, interval)
    if summary.get("arms"):
        lines += _arm_lines(summary, interval)
    if summary.get("milestones"):
        lines += format_milestones(summary["milestones"], "trials")
    return "\n".join(lines)


def _disease_lines(summary: dict[str, Any], interval: Any) -> list[str]:
    """The disease side of the trade-off: the primary endpoint, its power, the biomarker."""
    m = summary["metrics"]
    if "fvc_change_mean" not in m:
        return []
    arms = summary.get("arms")
    whose = f" (arm {arms['reference']})" if arms else ""
    lines = [
        f"disease control, per-trial mean FVC change from baseline at the landmark{whose}: "
        + interval("fvc_change_mean", "+.1f")
        + " % predicted"
    ]
    power = summary.get("probabilities", {}).get("fvc_significant")
    if power is not None:
        evaluable = m.get("fvc_evaluable")
        n = f"; evaluable patients per trial (mean) {evaluable['mean']:.1f}" if evaluable else ""
        names = arms["names"] if arms else []
        test = f" of {names[1]} against {names[0]}" if len(names) > 1 else ""
        lines.append(
            f"primary analysis{test} significant (power): {power['p']:.2f} "
            f"(MCSE {power['mcse']:.2f}){n}"
        )
    if "treg_change_mean" in m:
        lines.append(
            "Treg change from baseline at its landmark, per-trial mean: "
            + interval("treg_change_mean", "+.2f")
            + " % of CD4+"
        )
    return lines


_ARM_ROWS = (
    (
        "median_cumulative_prednisone_mg_week52",
        "median cumulative prednisone at week 52, mg",
        ",.0f",
    ),
    ("completed_fraction", "completed fraction", ".2f"),
    ("enrolled", "enrolled", ".0f"),
    ("fvc_change_mean", "mean FVC change at the landmark, % predicted", ".1f"),
)


def _arm_lines(summary: dict[str, Any], interval: Any) -> list[str]:
    """Each arm's values and each arm's difference from the reference, with intervals."""
    arms = summary["arms"]
    ref = arms["reference"]
    lines = [f"by arm (reference {ref}; differences are arm minus {ref} within a trial):"]
    for key, what, fmt in _ARM_ROWS:
        if not any(f"arm_{name}_{key}" in summary["metrics"] for name in arms["names"]):
            continue  # (no disease model: no FVC row)
        parts = [f"{name} {interval(f'arm_{name}_{key}', fmt)}" for name in arms["names"]]
        lines.append(f"  {what}: " + "; ".join(parts))
        m = summary["metrics"]
        for name in arms["names"][1:]:
            e = m.get(f"diff_{name}_{key}")
            if e is None:
                continue
            label = interval_label(summary["level"])
            lines.append(
                f"    difference {name} - {ref}: median {e['median']:{fmt}} "
                f"({label}: {e['low']:{fmt}} to {e['high']:{fmt}})"
            )
    return lines


def format_forecast(scenario: Scenario, result: ForecastResult) -> list[str]:
    """The lines ``dosesim forecast`` prints after its first: sites, milestones, sites needed."""
    from sim.forecast import SEARCH_PROBABILITY
    from sim.site_rates import exposure_days

    rec = scenario.recruitment
    assert rec is not None
    s = result.summary
    label = interval_label(s["level"])
    out = [
        f"enrolled so far: {s['observed_enrolled']} of {rec.target_enrolled}; intervals are "
        f"{label} of replicates",
        f"screening rate per site, people screened per month: mean ({label} interval)",
    ]
    for entry, belief in zip(s["sites"], result.posteriors, strict=True):
        prior, post = entry["prior"], entry["posterior"]
        head = f"  site {entry['index']} {entry['name']}: "
        if belief.known_rate:
            out.append(head + f"known rate {prior['mean_per_month']:.2f} (poisson)")
            continue
        text = (
            f"prior {prior['mean_per_month']:.2f} ({prior['low_per_month']:.2f}-"
            f"{prior['high_per_month']:.2f})"
        )
        if not belief.updated:
            why = "not open by the as-of date" if s.get("observed", True) else "no observed data"
            out.append(head + text + f"; {why}: prior kept")
            continue
        what = "screened" if belief.screened else "enrolled"
        if belief.opening.known:
            days = exposure_days(belief.site, belief.opening.lo, belief.exposure_until_day)
            seen = f"{belief.count} {what} in {days:,.0f} days open"
        else:
            seen = (
                f"{belief.count} {what}; opened about day "
                f"{belief.opening.quantile(0.5):,.0f} (posterior median)"
            )
        out.append(
            head
            + text
            + f"; posterior {post['mean_per_month']:.2f} ({post['low_per_month']:.2f}-"
            + f"{post['high_per_month']:.2f}) from {seen}"
        )
    out += format_milestones(s["milestones"], "replicates")
    target = f"P(completing by the deadline) >= {SEARCH_PROBABILITY:.2f}"
    if result.sites_needed == 0:
        out.append(f"no more sites needed for {target}")
    elif result.sites_needed is None:
        tried = s.get("max_extra_sites", 10)
        out.append(f"no number of added sites tried (up to {tried}) gives {target}")
    else:
        p = result.sites_needed_probability
        out.append(
            f"{result.sites_needed} more site(s) like the prior, opening "
            f"{rec.new_site_delay_days:g} days after {s['as_of']}, give P(completing by the "
            f"deadline) = {p:.2f} (>= {SEARCH_PROBABILITY:.2f})"
        )
    return out


def _when(entry: dict[str, Any] | None, deadline: str) -> str:
    if entry is None:
        return "-"
    if entry["later"]:
        return f"later than {deadline}"
    return str(entry["date"])


def format_milestones(m: dict[str, Any], what: str = "trials") -> list[str]:
    """The milestone summary as the lines the commands print.

    Parameters
    ----------
    m : dict
        :func:`milestone_summary`'s result.
    what : str
        What a replicate is called ("trials", "replicates").
    """
    label = interval_label(m["level"])
    end = m["enrolment_deadline"]
    reached = m["target_reached"]
    ttt = m["time_to_target"]
    lines = [
        f"target of {m['target']} by the enrolment deadline {end}: reached in "
        f"{100 * reached['p']:.1f} % of {what} (MCSE {100 * reached['mcse']:.1f} %)",
        f"day the target is reached: median {_when(ttt['median'], end)} ({label}: "
        f"{_when(ttt['low'], end)} to {_when(ttt['high'], end)}; not reached counts as later)",
    ]
    e = m["enrolled"]
    if math.isfinite(e["median"]):
        lines.append(
            f"enrolled by {end}: median {e['median']:g} ({label}: {e['low']:g}-{e['high']:g}), "
            f"mean {e['mean']:.1f}"
        )
    lpi, lplv = m["last_patient_in"], m["last_patient_last_visit"]
    if lpi["n"]:
        lines.append(
            f"{what} reaching the target ({lpi['n']}): last patient in median "
            f"{lpi['median']['date']} ({label}: {lpi['low']['date']} to {lpi['high']['date']}); "
            f"last visit median {lplv['median']['date']} "
            f"({label}: {lplv['low']['date']} to {lplv['high']['date']})"
        )
    else:
        lines.append(f"no {what[:-1] if what.endswith('s') else what} reached the target")
    done = m["completed_by_deadline"]
    lines.append(
        f"P(target reached and last visit by {m['deadline']}) {done['p']:.3f} "
        f"(MCSE {done['mcse']:.3f})"
    )
    return lines


def _fmt(value: float, digits: int) -> str:
    if not math.isfinite(value):
        return "-"
    return f"{value:,.{digits}f}"


def _digits(metric: str, comparison: Comparison) -> int:
    sub = comparison.table.loc[comparison.table["metric"] == metric, "mean"].abs()
    scale = float(sub.max()) if sub.notna().any() else 0.0
    if scale >= 100:
        return 0
    if scale >= 10:
        return 1
    if scale >= 1:
        return 2
    return 3


def format_comparison(comparison: Comparison) -> str:
    """A readable table: per metric, each scenario's mean (MCSE) and difference with intervals."""
    t = comparison.table
    width = max([len(s) for s in comparison.scenarios] + [8])
    lines = [
        f"{len(comparison.scenarios)} scenarios, {comparison.replicates} replicates each, "
        f"seed {comparison.seed} (common random numbers); differences to "
        f"{comparison.reference}, paired and unpaired {comparison.level_label} intervals"
    ]
    for metric in comparison.metrics:
        k = _digits(metric, comparison)
        lines.append("")
        lines.append(metric)
        lines.append(
            f"  {'scenario':<{width}}  {'mean':>12}  {'MCSE':>9}  {'difference':>11}  "
            f"{'paired ' + comparison.level_label:>25}  {'unpaired ' + comparison.level_label:>25}"
        )
        for row in t[t["metric"] == metric].itertuples(index=False):
            paired = f"{_fmt(row.paired_low, k)} to {_fmt(row.paired_high, k)}"
            unpaired = f"{_fmt(row.unpaired_low, k)} to {_fmt(row.unpaired_high, k)}"
            lines.append(
                f"  {row.scenario:<{width}}  {_fmt(row.mean, k):>12}  {_fmt(row.mcse, k):>9}  "
                f"{_fmt(row.difference, k):>11}  {paired:>25}  {unpaired:>25}"
            )
    return "\n".join(lines)


def format_schedules(schedules: dict[str, Schedule]) -> list[str]:
    """Each drug's schedule as ``dosesim schedule`` prints it: days, weeks, mg/day, total."""
    lines: list[str] = []
    for drug, schedule in schedules.items():
        n = schedule.doses_per_day
        per_day = "once daily" if n == 1 else f"{n} doses a day"
        lines += ["", f"{drug} ({per_day})"]
        lines.append(f"  {'days':>9}  {'weeks':>7}  {'mg/day':>8}  {'cumulative mg':>13}")
        for seg in schedule.segments():
            days = f"{seg.start_day}-{seg.end_day - 1}"
            weeks = f"{seg.start_day // 7 + 1}-{(seg.end_day - 1) // 7 + 1}"
            lines.append(
                f"  {days:>9}  {weeks:>7}  {_number(seg.dose_mg_per_day):>8}"
                f"  {seg.cumulative_mg:>13,.1f}"
            )
    return lines


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))
