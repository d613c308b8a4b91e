"""A rendered report in a real headless browser (Debian's chromium): no JavaScript errors, every figure drawn."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from test_report import runs  # noqa: F401 - the module-scoped fixture of two tiny training runs

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
    from nasattn.recipe import Recipe
    from nasattn.engine import train, write_run
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


# Layout checks run inside the page once plotly has drawn: the page is no wider than the window, every error
# bar of a percent axis stays in [0, 1], and every heading has content before the next heading of its level.
LAYOUT_CHECK = """<script>
window.addEventListener('load', () => setTimeout(() => {
  const de = document.documentElement, bad_bars = [], empty = [];
  for (const gd of document.querySelectorAll('.js-plotly-plot')) {
    for (const t of gd._fullData || []) {
      const e = t.error_y;
      if (!e || !e.visible || !t.y) continue;
      const axis = gd._fullLayout[(t.yaxis || 'y').replace('y', 'yaxis')] || {};
      if (!String(axis.tickformat || '').includes('%')) continue;
      t.y.forEach((y, i) => {
        if (y === null || y === undefined) return;
        const plus = (e.array || [])[i] || 0, minus = e.symmetric === false ? ((e.arrayminus || [])[i] || 0) : plus;
        if (y - minus < -1e-9 || y + plus > 1 + 1e-9) bad_bars.push(gd.id + ':' + i);
      });
    }
  }
  const hs = [...document.querySelectorAll('main h1, main h2, main h3, main h4')];
  for (const h of hs) {
    const next = h.nextElementSibling, level = +h.tagName[1];
    if (!next || (/^H[1-6]$/.test(next.tagName) && +next.tagName[1] <= level)) empty.push(h.textContent);
  }
  const out = document.createElement('pre');
  out.id = 'layout-check';
  out.textContent = JSON.stringify({scrollWidth: de.scrollWidth, clientWidth: de.clientWidth, bad_bars, empty,
                                    drawn: document.querySelectorAll('.js-plotly-plot').length});
  document.body.appendChild(out);
}, 500));
</script>"""


def layout_check(page: Path, tmp_path: Path, width: int = 1280) -> dict:
    """Load a copy of ``page`` with LAYOUT_CHECK at ``width`` px and return what it measured."""
    import json

    probe = tmp_path / f"probe-{page.parent.name}.html"
    probe.write_text(page.read_text().replace("</body>", LAYOUT_CHECK + "</body>"))
    res = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
         f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={width},900", "--virtual-time-budget=20000",
         "--dump-dom", probe.resolve().as_uri()], capture_output=True, text=True, timeout=180)
    found = re.search(r'<pre id="layout-check">(.*?)</pre>', res.stdout, re.S)
    assert found, res.stderr[-2000:]
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


SCREEN_HEIGHT = {"run": 4200, "search": 7800, "ablation": 5600}  # about each report's length at 1280 px


def screenshot(page: Path, png: Path, tmp_path: Path, width: int = 1280, height: int = 3000) -> None:
    """A ``width`` x ``height`` screenshot of ``page`` (headless Chromium)."""
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={width},{height}",
                    "--virtual-time-budget=20000", f"--screenshot={png.resolve()}", page.resolve().as_uri()],
                   capture_output=True, timeout=180, check=True)


@pytest.fixture(scope="module")
def report_pages(runs, tmp_path_factory) -> dict[str, Path]:  # noqa: F811 - runs: the imported fixture
    """The three reports: a run, a search (12 trials, a preset stopped by ASHA, best/) and an ablation whose
    95% CIs of two seeds reach past 0% and 100% unclipped."""
    import json
    import shutil

    import pandas as pd

    from nasattn.report import render_report
    from test_report import ablation_rows, make_search

    root = tmp_path_factory.mktemp("reports")
    search = root / "search"
    search.mkdir()
    make_search(search, n_complete=12)
    trials = pd.read_csv(search / "trials.csv")
    cbam = trials["seed_point"] == "cbam"
    trials.loc[cbam, ["status", "stopped_by", "test_accuracy"]] = ["STOPPED", "early_stopping", None]
    trials.to_csv(search / "trials.csv", index=False)
    (search / "study.yaml").write_text((search / "study.yaml").read_text() + "early_stopping: {type: asha}\n")
    shutil.copytree(runs["balanced"], search / "best")
    ablation = root / "ablation"
    ablation.mkdir()
    rows = pd.DataFrame(ablation_rows(runs))
    rows.loc[rows["seed"] == 0, "test_accuracy"] = 0.02
    rows.loc[(rows["seed"] == 1) & (rows["variant"] == "balanced"), "test_accuracy"] = 0.97
    rows.to_csv(ablation / "ablation.csv", index=False)
    (ablation / "ablation.json").write_text(json.dumps({"base": "baseline", "command": "nasattn ablate test.yaml",
                                                        "data": "eurosat-mini"}))
    return {"run": render_report(runs["balanced"]), "search": render_report(search), "ablation": render_report(ablation)}


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["run", "search", "ablation"])
def test_a_report_fits_1280_px_with_error_bars_in_range_and_no_empty_heading(report_pages, kind, tmp_path):
    import os

    page = report_pages[kind]
    check = layout_check(page, tmp_path)
    assert check["drawn"] >= 3
    assert check["scrollWidth"] <= check["clientWidth"] == 1280
    assert check["bad_bars"] == []
    assert check["empty"] == []
    if os.environ.get("NASATTN_SCREENS"):  # NASATTN_SCREENS=reports/screens: the committed screenshots
        screenshot(page, Path(os.environ["NASATTN_SCREENS"]) / f"{kind}.png", tmp_path, height=SCREEN_HEIGHT[kind])


def test_the_layout_check_sees_a_wide_page_an_out_of_range_bar_and_an_empty_heading(tmp_path):
    import plotly.graph_objects as go

    from nasattn.report.html import Page

    page = Page("broken", "run")
    page.section("Empty")
    page.section("Next")
    page.raw('<div style="width:3000px">wide</div>')
    fig = go.Figure(go.Bar(x=["a"], y=[0.1], error_y=dict(type="data", array=[0.3], visible=True)))
    fig.update_yaxes(tickformat=".0%")
    page.figure(fig, "fig-bad")
    (tmp_path / "broken").mkdir()
    check = layout_check(page.write(tmp_path / "broken" / "report.html"), tmp_path)
    assert check["scrollWidth"] > check["clientWidth"]
    assert check["bad_bars"] == ["fig-bad:0"]
    assert check["empty"] == ["Empty"]
