"""Open a report in headless Chromium: no script errors, every figure decoded, nothing
wider than a 1,280-pixel window, and a screenshot saved beside the page."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Flags from the machine notes: no sandbox as root, and no background network.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]  # fmt: skip
SKIP_REASON = "Chromium is not installed (.ci/run installs it)"


def check_in_chromium(report: Path, tmp_path: Path) -> None:
    """Assert the page loads without errors with every figure shown and fits 1,280 px.

    The page's own self-check script records the figures decoded (``data-figures``), any
    script error (``data-errors``) and the document's width (``data-width``); a
    screenshot is saved as ``<report stem>_screenshot.png`` beside the page.
    """
    assert CHROMIUM is not None, SKIP_REASON
    page = report.resolve().as_uri()
    profile = ["--user-data-dir=" + str(tmp_path / "profile")]
    dom = subprocess.run(
        [CHROMIUM, *FLAGS, *profile, "--window-size=1280,2000", "--virtual-time-budget=10000",
         "--dump-dom", page],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body[^>]*>", dom.stdout)
    assert body is not None
    figures = re.search(r'data-figures="(\d+)/(\d+)"', body.group(0))
    assert figures is not None, body.group(0)
    shown, total = map(int, figures.groups())
    n_img = report.read_text().count("<img ")
    assert total == n_img and shown == total
    assert "data-errors" not in body.group(0)
    width = re.search(r'data-width="(\d+)"', body.group(0))
    assert width is not None and int(width.group(1)) <= 1280, width
    shot = tmp_path / "report.png"
    subprocess.run(
        [CHROMIUM, *FLAGS, *profile, "--window-size=1200,2400", f"--screenshot={shot}", page],
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert shot.exists() and shot.stat().st_size > 10_000
    shutil.copy(shot, report.with_name(f"{report.stem}_screenshot.png"))
