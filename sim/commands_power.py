"""The handler of ``dosesim power``: power and precision against the sample size."""

from __future__ import annotations

import argparse
from pathlib import Path

from sim.command_support import EXIT_OK, execution_options, scenario_head
from sim.errors import DosesimError

__all__ = ["parse_sizes", "power_command"]


def parse_sizes(text: str) -> list[int]:
    """``--n 10,15,20`` as sizes (each >= 2, increasing)."""
    try:
        sizes = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise DosesimError(f"--n {text!r}: give whole numbers, e.g. --n 10,15,20") from None
    if not sizes or any(n < 2 for n in sizes) or sizes != sorted(set(sizes)):
        raise DosesimError(f"--n {text!r}: increasing whole numbers of at least 2, e.g. 10,20")
    return sizes


def power_command(args: argparse.Namespace) -> int:
    from sim.fileio import atomic_write_text
    from sim.power import power_table, smallest_n
    from sim.results.tables import csv_text
    from sim.scenario import load_scenario

    sizes = parse_sizes(args.n)
    scenario = load_scenario(args.scenario, args.overrides)
    out = Path(args.out) if args.out else None
    target = out / "power.csv" if out else None
    if out is not None and not args.overwrite:
        for name in ("power.csv", "power.png", "report.html"):
            if (out / name).exists():
                raise DosesimError(f"{out / name} exists; give --overwrite to replace it")
    execution = execution_options(args, args.scheduler)
    table = power_table(scenario, sizes, args.replicates, args.seed, args.alpha, **execution)
    disease = scenario.disease
    assert disease is not None
    alpha = disease.analysis.alpha if args.alpha is None else args.alpha
    print(
        f"{scenario_head(scenario)}: power of the primary analysis (FVC change at week "
        f"{disease.fvc.landmark_week}, alpha {alpha:g}), {args.replicates} replicates per n, "
        f"seed {args.seed}"
    )
    print(f"  {'n':>5}  {'power':>12}  {'CI half-width (5-95 %)':>24}  {'evaluable':>9}"
          f"  {'P(complete by deadline)':>24}")  # fmt: skip
    for r in table.itertuples():
        print(
            f"  {r.n:>5}  {r.power:6.3f} ±{r.power_mcse:.3f}  "
            f"{r.ci_half_width_median:7.2f} ({r.ci_half_width_p5:.2f}-{r.ci_half_width_p95:.2f})"
            f"  {r.evaluable_mean:9.1f}  {r.p_complete_by_deadline:16.3f} ±{r.p_complete_mcse:.3f}"
        )
    print("(± is the Monte Carlo SE; a replicate that cannot be tested counts as not significant)")
    if args.target_power is not None:
        n = smallest_n(table, args.target_power)
        found = f"n = {n}" if n is not None else "no n on the grid"
        print(f"smallest n on the grid with power >= {args.target_power:g}: {found}")
    if target is not None:
        import io

        from sim.fileio import atomic_write_bytes
        from sim.views.power_plots import power_figure

        assert out is not None
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, csv_text(table))
        from sim.views.report import frame_html, render_page

        fig = power_figure(table, f"{scenario.label}: power and precision", args.target_power)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        atomic_write_bytes(out / "power.png", buf.getvalue())
        intro = (
            f"Power of the primary analysis of {scenario.label} (scenario sha256 "
            f"<code>{scenario.hash[:12]}</code>): whole trials at each total sample size, "
            f"{args.replicates} replicates per n, seed {args.seed}."
        )
        page = render_page(
            f"dosesim power: {scenario.label}",
            intro,
            [("Power and precision against n", frame_html(table.round(4)))],
            [("Power and precision against the sample size", fig)],
        )
        atomic_write_text(out / "report.html", page)
        print(f"wrote {target}, {out / 'power.png'} and {out / 'report.html'}")
    return EXIT_OK
