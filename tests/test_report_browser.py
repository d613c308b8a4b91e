"""A rendered report in a real headless browser (Debian's chromium): no JavaScript errors, every figure drawn."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")


def load_in_chromium(page: Path, tmp_path: Path) -> tuple[str, str]:
    """The DOM after scripts ran, and the browser's console log."""
    res = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
         "--virtual-time-budget=15000", "--dump-dom", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    return res.stdout, res.stderr


def js_errors(log: str) -> list[str]:
    return [ln for ln in log.splitlines() if "CONSOLE" in ln and ("Uncaught" in ln or "Error" in ln)]


def test_the_console_check_sees_a_script_error(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text("<html><body><script>throw new Error('boom')</script></body></html>")
    _, log = load_in_chromium(page, tmp_path)
    assert any("boom" in ln for ln in js_errors(log))


@pytest.mark.slow
def test_a_run_report_loads_without_errors_and_draws_every_figure(tmp_path):
    from nasattn.data import load_dataset
    from nasattn.engine import Recipe, train, write_run
    from nasattn.presets import get_preset
    from nasattn.report import render_report

    result = train(get_preset("balanced").arch.scaled(0.125), Recipe(epochs=2, eval_batch_size=256),
                   load_dataset("eurosat-mini"), progress=False, max_steps_per_epoch=2)
    run = write_run(tmp_path / "run", result)
    page = render_report(run)
    html = page.read_text()
    figures = len(re.findall(r'class="plotly-graph-div"', html))
    assert figures >= 4
    dom, log = load_in_chromium(page, tmp_path)
    assert js_errors(log) == []
    assert dom.count("js-plotly-plot") >= figures  # plotly marks each div it has drawn
    assert dom.count('class="main-svg"') >= figures
