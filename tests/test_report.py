"""HTML reports of run, search and ablation folders (nasattn.report) and ``nasattn report``."""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path

import pandas as pd
import pytest
import yaml

from nasattn.presets import get_preset
from nasattn.report import NotANasattnFolder, detect_kind, render_report
from nasattn.report.search import rung_ranks

RUN_IDS = ["table-run-summary", "table-run-per-class", "fig-run-confusion", "fig-run-curves", "fig-run-alpha",
           "fig-run-confidence"]
SEARCH_IDS = ["table-search-status", "table-search-best", "table-search-presets", "fig-search-history",
              "fig-search-importances", "fig-search-parallel", "fig-search-pareto", "table-search-trials",
              "table-search-errors"]
ABLATION_IDS = ["table-ablation-variants", "table-ablation-paper", "fig-ablation-accuracy", "fig-ablation-per-class",
                "fig-ablation-confusion", "fig-ablation-curves", "fig-ablation-confidence", "table-ablation-runs"]


def ids_of(html: str) -> set[str]:
    return set(re.findall(r'id="([^"]+)"', html))


def check_self_contained(html: str) -> None:
    assert html.count("plotly.js v") == 1  # the library's banner: embedded exactly once
    assert "<script src" not in html.lower()
    assert "nasattn" in html and 'id="report-footer"' in html


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two tiny real training runs on eurosat-mini: baseline and balanced (learnable alpha)."""
    from nasattn.data import load_dataset
    from nasattn.recipe import Recipe
    from nasattn.engine import train, write_run
    from nasattn.presets import get_preset

    root = tmp_path_factory.mktemp("runs")
    from nasattn.data import stratified_subset

    data = load_dataset("eurosat-mini", progress=False)
    data = data.subset(stratified_subset(data.labels, 0.5, seed=0))  # 250 images: fast on a loaded CPU
    out = {}
    for name, width in (("baseline", 0.25), ("balanced", 0.125)):
        spec = get_preset(name).arch.scaled(width)
        res = train(spec, Recipe(epochs=1, batch_size=32, eval_batch_size=256), data, device="cpu", progress=False,
                    max_steps_per_epoch=2)
        res.metrics["command"] = f"nasattn train --preset {name} (test)"
        out[name] = write_run(root / name, res)
    return out


def ablation_rows(runs: dict[str, Path]) -> list[dict]:
    rows = []
    for idx, (variant, run) in enumerate(runs.items()):
        m = json.loads((run / "metrics.json").read_text())
        for seed in (0, 1):
            shift = 0.01 * seed if idx == 0 else 0.005 * (1 - seed)  # non-constant paired differences
            row = {"variant": variant, "seed": seed, "status": "ok", "error": None, "run_dir": str(run)}
            for k in ("test_accuracy", "val_accuracy", "kappa", "macro_f1", "min_class_accuracy", "confidence_gap",
                      "ece", "params", "flops", "train_seconds"):
                row[k] = m[k] + (shift if k in ("test_accuracy", "kappa") else 0)
            row.update({f"per_class_accuracy/{c}": a for c, a in m["per_class_accuracy"].items()})
            row.update({f"alpha/{b}": a for b, a in (m.get("alpha") or {}).items()})
            rows.append(row)
    return rows


def test_run_report(runs):
    assert detect_kind(runs["balanced"]) == "run"
    path = render_report(runs["balanced"])
    assert path == runs["balanced"] / "report.html"
    html = path.read_text()
    check_self_contained(html)
    assert set(RUN_IDS) <= ids_of(html)
    assert "nasattn train --preset balanced (test)" in html


def test_ablation_report_with_paper_numbers(runs, tmp_path):
    pd.DataFrame(ablation_rows(runs)).to_csv(tmp_path / "ablation.csv", index=False)
    (tmp_path / "ablation.json").write_text(json.dumps({"base": "baseline", "command": "nasattn ablate test.yaml"}))
    out = render_report(tmp_path, tmp_path / "out" / "r.html")
    html = out.read_text()
    check_self_contained(html)
    assert set(ABLATION_IDS) <= ids_of(html)
    assert any(i.startswith("fig-ablation-alpha-") for i in ids_of(html))
    assert "paired t" in html and 'class="best"' in html
    assert "nasattn ablate test.yaml" in html
    # the paper table: each preset file's paper number, and the difference of the seeds' mean from it
    table = _rows(html, "table-ablation-paper")
    for name in ("baseline", "balanced"):
        paper = get_preset(name).paper
        cells = {r[1]: r for r in table if r[0] == name}
        assert cells["test accuracy"][2] == f"{paper['test_accuracy']:.2%}"
        run_acc = json.loads((runs[name] / "metrics.json").read_text())["test_accuracy"]
        shift = {"baseline": 0.005, "balanced": 0.0025}[name]  # the mean of ablation_rows' two seed shifts
        diff = cells["test accuracy"][5]
        assert diff.endswith(" pp") and float(diff[:-3]) == pytest.approx((run_acc + shift - paper["test_accuracy"]) * 100, abs=0.006)
    balanced = {r[1]: r for r in table if r[0] == "balanced"}
    assert balanced["Cohen's kappa"][2] == f"{get_preset('balanced').paper['kappa']:.4g}"
    assert balanced["confidence gap"][2] == f"{get_preset('balanced').paper['confidence_gap'] * 100:.2f} points"


def _rows(html: str, table_id: str) -> list[list[str]]:
    """The body rows of one table, as lists of cell texts."""
    body = html[html.index(f'id="{table_id}"'):].split("</table>")[0].split("<tbody>")[-1]
    return [[unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)]


def test_ablation_base_of_a_preset_is_compared_with_the_paper(runs, tmp_path):
    rows = [dict(r, variant="base" if r["variant"] == "balanced" else "no_attention") for r in ablation_rows(runs)]
    pd.DataFrame(rows).to_csv(tmp_path / "ablation.csv", index=False)
    (tmp_path / "ablation.json").write_text(json.dumps({
        "base": "base", "base_source": {"preset": "balanced"}, "seeds": [0, 1], "width_mult": 0.125, "epochs": 2}))
    html = render_report(tmp_path).read_text()
    table = _rows(html, "table-ablation-paper")
    assert {r[0] for r in table} == {"base (balanced)"}  # no_attention names no paper net
    paper = get_preset("balanced").paper
    assert {r[1]: r[2] for r in table}["test accuracy"] == f"{paper['test_accuracy']:.2%}"
    header = html[html.index('id="report-header"'):].split("</header>")[0]
    assert "base (preset balanced)" in header and "x0.125" in header and "<dd>2</dd>" in header


def test_partial_ablation_renders(runs, tmp_path):
    rows = ablation_rows({"baseline": runs["baseline"]})[:1]
    rows.append({"variant": "cbam", "seed": 0, "status": "ERROR", "error": "RuntimeError: boom", "run_dir": None})
    rows.append({"variant": "baseline", "seed": 1, "status": "ok", "run_dir": str(tmp_path / "gone"),
                 "test_accuracy": 0.5})
    pd.DataFrame(rows).to_csv(tmp_path / "ablation.csv", index=False)
    html = render_report(tmp_path).read_text()
    check_self_contained(html)
    assert {"table-ablation-variants", "fig-ablation-accuracy", "table-ablation-runs"} <= ids_of(html)
    assert "RuntimeError: boom" in html


def test_empty_ablation_renders(tmp_path):
    (tmp_path / "ablation.json").write_text(json.dumps({"base": "baseline"}))
    html = render_report(tmp_path).read_text()
    assert "table-ablation-variants" not in ids_of(html) and "no run has finished" in html


def make_search(folder: Path, n_complete: int = 6) -> None:
    """A two-objective study in study.db plus trials.csv (preset seed rows, a failed trial)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    (folder / "study.yaml").write_text("# resolved study (from studies/test.yaml); the search space is copied\n" + yaml.safe_dump({
        "name": "unit", "study_name": None, "data": "eurosat-mini",
        "objectives": [{"metric": "val_accuracy", "mode": "max"}, {"metric": "params", "mode": "min"}],
        "budget": {"trials": n_complete + 1, "epochs": 1}, "sampler": {"type": "random"}}))
    st = optuna.create_study(study_name="unit", storage=f"sqlite:///{folder / 'study.db'}",
                             directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0))
    rows = []
    for i in range(n_complete + 1):
        t = st.ask({"width": optuna.distributions.IntDistribution(16, 64),
                    "attention": optuna.distributions.CategoricalDistribution(["none", "cbam", "fusion"]),
                    "lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)})
        failed = i == n_complete
        acc, params = 0.5 + 0.05 * i - 0.1 * (i % 2), 1000 * t.params["width"]
        if failed:
            st.tell(t, state=optuna.trial.TrialState.FAIL)
        else:
            st.tell(t, [acc, params])
        rows.append({"number": t.number, "state": "FAIL" if failed else "COMPLETE", "tune_trial_id": f"id{i}",
                     "seed_point": ["baseline", "cbam", "balanced"][i] if i < 3 else None,
                     "status": "FAILED" if failed else "COMPLETE", "epochs": 1, "duration_s": 10.0 + i,
                     "objective.val_accuracy": None if failed else acc, "objective.params": None if failed else params,
                     **{f"param.{k}": v for k, v in t.params.items()},
                     "val_accuracy": None if failed else acc, "test_accuracy": None if failed else acc - 0.02,
                     "params": None if failed else params, "flops": None if failed else 10 * params,
                     "run_dir": None, "error": "ValueError: broken" if failed else None})
    pd.DataFrame(rows).to_csv(folder / "trials.csv", index=False)


def test_search_report(tmp_path):
    make_search(tmp_path, n_complete=10)
    assert detect_kind(tmp_path) == "search"
    html = render_report(tmp_path).read_text()
    check_self_contained(html)
    assert set(SEARCH_IDS) <= ids_of(html)
    assert "from 10 complete trials" in html  # 10 is the fewest that shows importances (9: see below)
    assert "preset balanced" in html and "ValueError: broken" in html
    assert "nasattn search studies/test.yaml" in html


def test_partial_search_renders(tmp_path):
    """An interrupted search: study.yaml and an empty study, no trials.csv."""
    import optuna

    make_search(tmp_path, n_complete=1)
    (tmp_path / "trials.csv").unlink()
    html = render_report(tmp_path).read_text()
    assert "table-search-trials" in ids_of(html) and "fig-search-importances" not in ids_of(html)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "study.yaml").write_text("name: e\nobjectives: [val_accuracy]\n")
    optuna.create_study(study_name="e", storage=f"sqlite:///{empty / 'study.db'}")
    html = render_report(empty).read_text()
    assert "No trial has been recorded yet" in html


def test_search_report_ranks_presets_after_epoch_1(tmp_path):
    """Trials stopped at different epochs are ranked by their epoch-1 value (Optuna intermediate values)."""
    import optuna

    (tmp_path / "study.yaml").write_text("name: r\nobjectives: [val_accuracy]\n")
    st = optuna.create_study(study_name="r", storage=f"sqlite:///{tmp_path / 'study.db'}", direction="maximize")
    dist = {"w": optuna.distributions.IntDistribution(1, 9)}
    curves = {"baseline": [0.70, 0.80, 0.90], "cbam": [0.50], "balanced": [0.65], None: [0.75, 0.78, 0.79]}
    for i, (preset, curve) in enumerate(curves.items()):
        st.add_trial(optuna.trial.create_trial(
            params={"w": i + 1}, distributions=dist, value=curve[-1],
            intermediate_values=dict(enumerate(curve, start=1)), user_attrs={"seed_point": preset} if preset else {}))
    ranks = rung_ranks(st, "max")
    assert list(ranks["rank"]) == [1, 2, 3, 4] and list(ranks["number"]) == [3, 0, 2, 1]
    html = render_report(tmp_path).read_text()
    table = html[html.index('id="table-search-ranks"'):].split("</table>")[0]
    assert "preset balanced" in table and "3 of 4" in table and "best after epoch 1" in table and "65.00%" in table


def test_not_a_nasattn_folder(tmp_path):
    with pytest.raises(NotANasattnFolder):
        render_report(tmp_path)


def test_cli_report(runs, tmp_path):
    from typer.testing import CliRunner

    from nasattn.cli.main import app

    target = tmp_path / "r.html"
    res = CliRunner().invoke(app, ["report", str(runs["baseline"]), "--out", str(target)])
    assert res.exit_code == 0, res.output
    assert target.is_file() and "fig-run-curves" in target.read_text()
    res = CliRunner().invoke(app, ["report", str(tmp_path / "nothing")])
    assert res.exit_code == 2
    (tmp_path / "plain").mkdir()
    res = CliRunner().invoke(app, ["report", str(tmp_path / "plain")])
    assert res.exit_code == 2 and "not a nasattn folder" in res.output


def test_a_failing_report_is_returned_and_warned_not_raised(tmp_path):
    from nasattn.report import render_report_safely

    warned = []
    path, error = render_report_safely(tmp_path, warn=warned.append)
    assert path is None and error.startswith("report failed: NotANasattnFolder") and warned == [error]
    make_search(tmp_path)
    path, error = render_report_safely(tmp_path, warn=warned.append)
    assert error is None and path.is_file() and len(warned) == 1


def _header(html: str) -> dict[str, str]:
    head = html[html.index('id="report-header"'):].split("</header>")[0]
    return {unescape(k): unescape(v) for k, v in re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", head)}


def test_search_report_header_names_the_data_and_the_command_with_its_overrides(tmp_path):
    from nasattn.search.run import RUN_FILE

    make_search(tmp_path, n_complete=3)
    command = "nasattn search studies/test.yaml --data /data/other --set budget.trials=4"
    (tmp_path / RUN_FILE).write_text(json.dumps({"command": command}))
    header = _header(render_report(tmp_path).read_text())
    assert header["data"] == "eurosat-mini" and header["command"] == command


def test_importances_need_ten_complete_trials_and_say_how_many(tmp_path):
    """9 complete trials: no chart, and why (test_search_report renders 10, with the chart)."""
    make_search(tmp_path, n_complete=9)
    html = render_report(tmp_path).read_text()
    assert "fig-search-importances" not in ids_of(html)
    assert "only 9 complete trials; importances need at least 10" in html


def test_a_stopped_preset_says_why_in_the_chart(tmp_path):
    make_search(tmp_path, n_complete=4)
    trials = pd.read_csv(tmp_path / "trials.csv")
    trials.loc[trials["seed_point"] == "cbam", ["status", "stopped_by", "val_accuracy", "test_accuracy"]] = \
        ["STOPPED", "early_stopping", None, None]
    trials.to_csv(tmp_path / "trials.csv", index=False)
    (tmp_path / "study.yaml").write_text((tmp_path / "study.yaml").read_text() + "early_stopping: {type: asha}\n")
    html = render_report(tmp_path).read_text()
    figure = html[html.index('"fig-search-presets"'):]
    assert "stopped at epoch 1 by ASHA" in figure.split("</script>")[0]


def test_error_bars_are_clipped_to_the_metric_range():
    from nasattn.report.figures import bars, clipped_errors

    plus, minus = clipped_errors([0.1, 0.95, None, 0.5], [0.3, 0.2, 0.1, None], (0.0, 1.0))
    assert plus == pytest.approx([0.3, 0.05, 0.0, 0.0]) and minus == pytest.approx([0.1, 0.2, 0.0, 0.0])
    fig = bars(["a", "b"], [0.1, 0.95], [0.3, 0.2])
    err = fig.data[0].error_y
    assert err.arrayminus[0] == pytest.approx(0.1) and err.array[1] == pytest.approx(0.05)
    assert fig.layout.yaxis.range[0] == 0


def test_alpha_is_summarised_per_stage_on_a_range_at_least_a_tenth_wide_with_whole_epochs():
    from nasattn.report.figures import alpha_control_curves

    hist = pd.DataFrame({"epoch": [1, 2], "alpha/stages.0.0.attention": [0.62, 0.63],
                         "alpha/stages.0.1.attention": [0.60, 0.61], "alpha/stages.1.0.attention": [0.5, 0.52],
                         "alpha_decay_only/stages.0.0.attention": [0.62, 0.62],
                         "alpha_decay_only/stages.0.1.attention": [0.62, 0.62]})
    fig = alpha_control_curves(hist)
    names = [t.name for t in fig.data]
    assert names == ["stage 1 (2 blocks), learned", "stage 1, weight decay alone", "stage 2 (1 block), learned"]
    assert list(fig.data[0].y) == pytest.approx([0.61, 0.62])
    lo, hi = fig.layout.yaxis.range
    assert hi - lo >= 0.1 and 0 <= lo <= 0.5 and 0.62 <= hi <= 1  # every plotted value (0.5 to 0.62) inside
    assert fig.layout.xaxis.dtick == 1 and fig.layout.xaxis.tick0 == 1
