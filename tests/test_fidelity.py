"""``nasattn fidelity``: sampling a finished search, rank agreement statistics, the report, and an end-to-end run."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml
from scipy import stats
from typer.testing import CliRunner

from nasattn.cli.main import app
from nasattn.fidelity.run import (FidelityPlan, Sampled, agreement, fidelity_rows, reuse_finished_runs, run_dir_of, select_trials,
                                  trial_configs, write_outputs)
from nasattn.stats import correlation, not_retrained, regret, top_k_overlap


# ------------------------------------------------------------------------------------ statistics
def test_correlations_agree_with_scipy_and_their_intervals_cover_them():
    rng = np.random.default_rng(0)
    x = rng.normal(size=12)
    y = x + rng.normal(scale=0.8, size=12)
    for method, ref in (("spearman", stats.spearmanr(x, y)), ("kendall", stats.kendalltau(x, y))):
        c = correlation(x, y, method, n_resamples=500)
        assert c.n == 12 and c.value == pytest.approx(ref.statistic) and c.p_value == pytest.approx(ref.pvalue)
        assert c.p_method == "asymptotic"  # above 10 points
        assert -1 < c.ci_low < c.value < c.ci_high < 1 and c.boot_low < c.value < c.boot_high
    perfect = correlation([1, 2, 3, 4, 5], [10, 20, 30, 40, 50], "spearman", n_resamples=200)
    assert perfect.value == pytest.approx(1.0) and math.isnan(perfect.ci_low) and "perfect agreement" in perfect.note
    assert math.isnan(perfect.boot_high)  # every resample agrees perfectly: a bound of 1 from ties, not shown
    assert perfect.p_value == pytest.approx(2 / math.factorial(5))  # exact: the identity and its reverse
    few = correlation([1, 2], [2, 1])
    assert math.isnan(few.value) and "at least 3" in few.note
    nan_pairs = correlation([1, 2, float("nan"), 4], [1, 2, 3, 4])
    assert nan_pairs.n == 3 and "no Fisher-z interval" in nan_pairs.note


def test_top_k_overlap_and_regret_by_hand():
    low = [0.9, 0.8, 0.7, 0.6]
    high = [0.70, 0.95, 0.90, 0.60]
    # cheap top 2 = {0, 1}; high top 2 = {1, 2}: one shared
    assert top_k_overlap(low, high, 2) == pytest.approx(0.5)
    # the cheap winner (index 0) reaches 0.70 where the best reaches 0.95
    assert regret(low, high) == pytest.approx(0.25)
    assert regret(high, high) == 0.0
    # the whole search: trial 1 (second by the cheap ranking) was not re-trained
    search_high = [0.70, float("nan"), 0.90, 0.60]
    assert top_k_overlap(low, search_high, 2) == pytest.approx(0.5) and not_retrained(low, search_high, 2) == 1
    assert math.isnan(regret([0.5, 0.9], [0.8, float("nan")]))  # the cheap winner was not re-trained


# ------------------------------------------------------------------------------------ sampling
def _trial(number: int, value: float | None, state: str = "COMPLETE", seed_point: str | None = None):
    attrs = {"arch": json.dumps({"n": number}), "recipe": json.dumps({"lr": 0.01}), "tune_trial_id": f"t{number}",
             "seed_point": seed_point, "status": "COMPLETE" if state == "COMPLETE" else "STOPPED", "epochs": 3,
             "params": 100 + number, "flops": 1000 + number, "zc_naswot": float(number)}
    if value is not None:
        attrs["val_accuracy"] = value
    st = getattr(optuna.trial.TrialState, state)
    t = optuna.trial.create_trial(state=st, values=[value] if st == optuna.trial.TrialState.COMPLETE else None,
                                  user_attrs=attrs, intermediate_values={1: value} if value is not None else {})
    t.number = number
    return t


def test_select_takes_the_top_k_k_random_others_and_every_preset_trial():
    trials = [_trial(i, v) for i, v in enumerate([0.5, 0.9, 0.7, 0.8, 0.6, 0.4, 0.3])]
    trials.append(_trial(7, 0.2, "PRUNED", seed_point="balanced"))  # stopped early, still a preset
    trials.append(_trial(8, None, "FAIL"))
    chosen = select_trials(trials, top=2, n_random=2, presets=True, seed=0)
    groups = {s.number: s.group for s in chosen}
    assert [n for n, g in groups.items() if g == "top"] == [1, 3]
    randoms = [n for n, g in groups.items() if g == "random"]
    assert len(randoms) == 2 and not set(randoms) & {1, 3, 7, 8}
    assert groups[7] == "preset" and next(s for s in chosen if s.number == 7).low == pytest.approx(0.2)
    assert chosen == select_trials(trials, top=2, n_random=2, presets=True, seed=0)  # seeded
    assert 7 not in {s.number for s in select_trials(trials, top=2, n_random=0, presets=False)}


def test_low_epoch_compares_every_trial_after_the_same_epoch():
    best = _trial(0, 0.9)
    best.intermediate_values = {1: 0.55, 2: 0.8, 3: 0.9}
    stopped = _trial(1, 0.6, "PRUNED", seed_point="cbam")  # ASHA stopped it after epoch 1
    at_last = {s.number: (s.low, s.low_epochs) for s in select_trials([best, stopped], 1, 0, True)}
    assert at_last[0] == (0.9, 3) and at_last[1][0] == 0.6  # each trial's last value: 3 epochs vs 1
    at_one = {s.number: (s.low, s.low_epochs) for s in select_trials([best, stopped], 1, 0, True, low_epoch=1)}
    assert at_one == {0: (0.55, 1), 1: (0.6, 1)}


# ------------------------------------------------------------------------------------ outputs
def _plan(tmp_path: Path, lows: list[float], presets: dict[int, str]) -> FidelityPlan:
    sample = [Sampled(number=i, tune_trial_id=f"t{i}", group="top", seed_point=presets.get(i), low_status="COMPLETE",
                      low_epochs=3, low=v, arch={}, recipe={},
                      static={"params": 1000 * (i + 1), "flops": 5000 * (len(lows) - i), "zc_naswot": float(i)})
              for i, v in enumerate(lows)]
    return FidelityPlan(search_dir=tmp_path, out=tmp_path / "fid", study={"name": "s", "budget": {"epochs": 3}},
                        sample=sample, seeds=[0, 1], recipe={"epochs": 12}, width_mult=0.25, subset=None, data=None,
                        resources={}, top=2)


def _done(plan: FidelityPlan, number: int, seed: int, val: float) -> None:
    d = run_dir_of(plan.out, number, seed)
    d.mkdir(parents=True)
    (d / "DONE").write_text(json.dumps({"val_accuracy": val, "test_accuracy": val - 0.01 * (seed + 1)}))


def test_paired_runs_use_the_test_predictions_per_run(tmp_path):
    plan = _plan(tmp_path, [0.5, 0.6], {1: "balanced"})
    plan.seeds = [0, 1, 2]
    truth = np.arange(40) % 10
    for n in (0, 1):
        for seed in (0, 1, 2):
            d = run_dir_of(plan.out, n, seed)
            d.mkdir(parents=True)
            wrong = 6 + 2 * seed if n == 0 else 2  # trial 0 misses 6, 8 and 10 images where balanced misses 2
            pred = truth.copy()
            pred[:wrong] = (pred[:wrong] + 1) % 10
            pd.DataFrame({"index": np.arange(40), "label": truth, "pred": pred}).to_csv(d / "predictions.csv", index=False)
            (d / "DONE").write_text(json.dumps({"val_accuracy": 0.5, "test_accuracy": 1 - wrong / 40, "n_test": 40}))
    paired = {p["trial"]: p for p in csv.DictReader(open(write_outputs(plan, fidelity_rows(plan), n_resamples=50,
                                                                             report=False).out / "paired.csv"))}
    p0 = paired["0"]
    # per run: the balanced run right where trial 0 is wrong on 4, 6 and 8 images, never the reverse; never pooled
    per_run = p0["mcnemar_per_run"]
    assert per_run.startswith("these two trained models disagree on these images")
    assert all(f"seed{s}: b={4 + 2 * s} c=0 p={stats.binomtest(0, 4 + 2 * s).pvalue:.3g}" in per_run for s in range(3))
    assert "mcnemar_p" not in p0 and "mcnemar_b" not in p0
    lo, hi = float(p0["boot_ci_low"]), float(p0["boot_ci_high"])  # two-level bootstrap from the predictions
    assert lo <= float(p0["test_accuracy_diff"]) <= hi < 0
    assert p0["test_accuracy_better"] == "0" and p0["verdict"]


def test_reuse_copies_only_finished_runs_of_the_same_trial_seed_and_budget(tmp_path):
    first = _plan(tmp_path / "a", [0.5, 0.6, 0.7], {2: "balanced"})
    first.seeds = [0]
    configs = trial_configs(first)
    first.out.mkdir(parents=True)
    (first.out / "trials.json").write_text(json.dumps({"experiments": ["tune"], "configs": configs}))
    for n in (0, 2):  # trial 1 did not finish
        _done(first, n, 0, 0.8)
    grown = _plan(tmp_path / "b", [0.5, 0.6, 0.7], {2: "balanced"})  # the same trials at seeds 0, 1
    assert reuse_finished_runs(trial_configs(grown), first.out) == 2
    assert (run_dir_of(grown.out, 0, 0) / "DONE").read_text() == (run_dir_of(first.out, 0, 0) / "DONE").read_text()
    assert not run_dir_of(grown.out, 1, 0).exists() and not run_dir_of(grown.out, 0, 1).exists()
    assert reuse_finished_runs(trial_configs(grown), first.out) == 0  # already there: nothing copied twice
    longer = _plan(tmp_path / "c", [0.5, 0.6, 0.7], {2: "balanced"})
    longer.recipe = {"epochs": 24}  # another budget: nothing is the same run
    assert reuse_finished_runs(trial_configs(longer), first.out) == 0
    from nasattn.config import ConfigError

    with pytest.raises(ConfigError, match="not a fidelity folder"):
        reuse_finished_runs(trial_configs(grown), tmp_path)


def test_rows_agreement_and_report_mark_presets_and_show_intervals(tmp_path):
    lows = [0.50, 0.60, 0.70, 0.80, 0.90]
    plan = _plan(tmp_path, lows, {4: "balanced", 0: "baseline"})
    plan.seeds = [0, 1, 2]
    highs = {0: (0.61, 0.64, 0.62), 1: (0.70, 0.74, 0.71), 2: (0.69, 0.73, 0.70), 3: (0.85, 0.88, 0.84),
             4: (0.88, 0.90, 0.89)}
    for n, vals in highs.items():
        for seed, v in enumerate(vals):
            if n != 2 or seed == 0:
                _done(plan, n, seed, v)  # trial 2 seeds 1 and 2 did not finish
    rows = fidelity_rows(plan)
    r0, r2 = rows[0], rows[2]
    assert r0["high_val_accuracy_seed0"] == 0.61 and r0["high_val_accuracy_seed1"] == 0.64
    assert r0["high_val_accuracy_mean"] == pytest.approx(np.mean(highs[0]))  # the high side averages its seeds
    assert r0["high_val_accuracy_std"] == pytest.approx(np.std(highs[0], ddof=1))
    assert r2["high_n"] == 1 and r2["high_val_accuracy_mean"] == pytest.approx(0.69) and r2["high_val_accuracy_std"] is None
    assert rows[4]["preset"] == "balanced" and rows[1]["preset"] == ""

    agree = {a["predictor"]: a for a in agreement(rows, top=2, n_resamples=300)}
    means = [r["high_val_accuracy_mean"] for r in rows]
    assert agree["low_val_accuracy"]["spearman"] == pytest.approx(stats.spearmanr(lows, means).statistic)
    assert agree["params"]["kendall"] == pytest.approx(stats.kendalltau([1, 2, 3, 4, 5], means).statistic)
    assert agree["flops"]["spearman"] == pytest.approx(-agree["params"]["spearman"])
    for a in agree.values():
        assert a["spearman_ci_low"] <= a["spearman"] <= a["spearman_ci_high"] and a["spearman_p_method"] == "exact permutation"
    assert agree["low_val_accuracy"]["regret"] == pytest.approx(0.0)
    assert agree["low_val_accuracy"]["top2_overlap"] == pytest.approx(1.0)

    paired = {p["trial"]: p for p in csv.DictReader(open(write_outputs(plan, rows, n_resamples=50, report=False).out / "paired.csv"))}
    assert set(paired) == {"0", "1", "2", "3"}  # every trial against the balanced preset's (trial 4)
    t3 = [highs[3][s] - 0.01 * (s + 1) for s in (0, 1, 2)]
    t4 = [highs[4][s] - 0.01 * (s + 1) for s in (0, 1, 2)]
    p3 = paired["3"]  # the statistics of `nasattn ablate`: difference with its CI, d_z, t-test, Holm over the family
    assert float(p3["test_accuracy_diff"]) == pytest.approx(np.mean(t3) - np.mean(t4))
    assert p3["test_accuracy_test"] == "paired t" and float(p3["test_accuracy_p"]) == pytest.approx(stats.ttest_rel(t3, t4).pvalue)
    assert float(p3["test_accuracy_diff_ci_low"]) <= float(p3["test_accuracy_diff"]) <= float(p3["test_accuracy_diff_ci_high"])
    d = np.subtract(t3, t4)
    assert float(p3["test_accuracy_effect_dz"]) == pytest.approx(d.mean() / d.std(ddof=1))
    assert p3["preset"] == "" and p3["base"] == "balanced" and p3["base_trial"] == "4" and p3["base_n"] == "3"
    assert paired["2"]["test_accuracy_test"] != "paired t"  # trial 2 has one seed only: no pairing
    assert paired["2"]["verdict"].startswith("not testable with 1 run")
    raw = {n: float(p["test_accuracy_p"]) for n, p in paired.items() if p["test_accuracy_p"]}
    from statsmodels.stats.multitest import multipletests

    holm = dict(zip(raw, multipletests(list(raw.values()), method="holm")[1]))
    assert len(raw) >= 3 and all(float(paired[n]["test_accuracy_p_adj"]) == pytest.approx(holm[n]) for n in raw)
    assert paired["3"]["mcnemar_per_run"] == ""  # these runs wrote no predictions.csv
    assert "no two-level bootstrap" in paired["3"]["boot_note"]

    result = write_outputs(plan, rows, n_resamples=200)
    assert result.report is not None, result.report_error
    html = result.report.read_text()
    assert 'id="agreement"' in html and "Spearman 95% CI (Fisher z)" in html and 'id="fidelity-scatter"' in html
    assert 'id="fidelity-paired"' in html and "Against the balanced preset" in html
    assert '"name":"presets"' in html and "balanced" in html and "baseline" in html
    with open(result.csv, newline="") as f:
        assert len(list(csv.DictReader(f))) == 5


def test_cli_rejects_a_folder_that_is_not_a_search_and_unknown_overrides(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["fidelity", str(tmp_path)])
    assert res.exit_code == 2 and "not a search folder" in res.output and "Traceback" not in res.output
    (tmp_path / "study.yaml").write_text(yaml.safe_dump({"name": "x", "budget": {"epochs": 2}}))
    res = runner.invoke(app, ["fidelity", str(tmp_path), "--set", "budget.trials=3"])
    assert res.exit_code == 2 and "allowed: recipe, width_mult" in res.output


def test_the_search_report_shows_the_seed_recipe_and_the_training_free_scores_correlation(tmp_path):
    import pandas as pd

    from nasattn.report import render_report

    folder = tmp_path / "search"
    folder.mkdir()
    (folder / "study.yaml").write_text(yaml.safe_dump({"name": "s", "objectives": [{"metric": "val_accuracy"}],
                                                      "seeds": {"presets": ["balanced"], "recipe": "own"}}))
    vals = [0.5, 0.6, 0.7, 0.8, 0.9]
    naswot = [10.0, 12.0, 11.0, 14.0, 15.0]
    pd.DataFrame({"number": range(5), "state": "COMPLETE", "status": "COMPLETE", "seed_point": ["balanced"] + [""] * 4,
                  "objective.val_accuracy": vals, "val_accuracy": vals, "params": [5, 4, 3, 2, 1],
                  "zc_naswot": naswot, "zc_synflow": [1.0] * 5, "time_to_first_epoch_s": [3.0, 4.0, 5.0, 6.0, 100.0],
                  "duration_s": [10.0] * 5}).to_csv(folder / "trials.csv", index=False)
    html = render_report(folder).read_text()
    assert "seeds.recipe = own" in html and "their own recipe" in html
    assert "first epoch" in html and "median 5.0 s over 5 trials; median trial duration 10.0 s" in html
    assert 'id="search-zero-cost"' in html and 'id="table-search-zero-cost"' in html
    body = html[html.index('id="table-search-zero-cost"'):]
    row = body[body.index("<td>zc_naswot</td>"):].split("</tr>")[0]
    assert f"{stats.spearmanr(naswot, vals).statistic:.3g}" in row  # 0.9
    params_row = body[body.index("<td>params</td>"):].split("</tr>")[0]
    assert "-1" in params_row  # the smallest network is the best here
    synflow_row = body[body.index("<td>zc_synflow</td>"):].split("</tr>")[0]
    assert "constant" in synflow_row  # a constant score ranks nothing, and says so


# ------------------------------------------------------------------------------------ end to end
def _tiny_arch(width: int, attention: str) -> dict:
    att = {"type": "se", "reduction": 4} if attention == "se" else {"type": "none"}
    return {"stages": [{"block": "plain", "depth": 1, "width": width, "attention": att},
                       {"block": "plain", "depth": 1, "width": 2 * width, "attention": att}],
            "head": {"type": "gap_linear", "dropout": 0.0}}


def _finished_search(folder: Path) -> None:
    """A search folder as `nasattn search` leaves it (study.yaml, study.db with three finished trials)."""
    folder.mkdir()
    study = {"name": "tiny", "data": "eurosat-mini", "budget": {"trials": 3, "epochs": 1, "max_steps_per_epoch": 2},
             "resources": {"cpus_per_trial": 1, "max_concurrent": 2}, "train": {"width_mult": 1.0, "checkpoint_every": 0},
             "storage": None, "output": str(folder)}
    (folder / "study.yaml").write_text(yaml.safe_dump(study))
    st = optuna.create_study(study_name="tiny", storage=f"sqlite:///{folder / 'study.db'}", direction="maximize")
    recipe = {"optimizer": "sgd", "lr": 0.03, "eval_batch_size": 256, "epochs": 1}
    for i, (width, att, val, seed_point) in enumerate([(8, "none", 0.30, "baseline"), (4, "se", 0.20, None), (8, "se", 0.10, None)]):
        st.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState.COMPLETE, values=[val], intermediate_values={1: val},
            user_attrs={"arch": json.dumps(_tiny_arch(width, att)), "recipe": json.dumps(recipe), "val_accuracy": val,
                        "tune_trial_id": f"t{i}", "seed_point": seed_point, "status": "COMPLETE", "epochs": 1,
                        "params": 100 * (i + 1), "flops": 1000 * (i + 1), "zc_naswot": 1.0 + i}))


@pytest.mark.slow
def test_fidelity_end_to_end_through_ray_with_resume(tmp_path, module_ray, monkeypatch):
    """The command in-process (CliRunner) under the module's one Ray: its lock, resume and exit codes are the
    same code as in a subprocess, and test_interrupts.py signals a fidelity study in a real one."""
    monkeypatch.setenv("COLUMNS", "200")
    search = tmp_path / "search"
    _finished_search(search)
    args = ["fidelity", str(search), "--top", "1", "--random", "2", "--seeds", "3", "--set", "recipe.epochs=2",
            "--set", "resources.max_concurrent=1", "--base-preset", "baseline", "--no-live"]  # one trial process, reused
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    fid = search / "fidelity"
    with open(fid / "fidelity.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["preset"] for r in rows] == ["baseline", "", ""]
    assert [r["group"] for r in rows] == ["top+preset", "random", "random"]  # the best trial is the preset's
    for r in rows:
        run = fid / "runs" / f"trial{r['trial']}" / "seed3"
        m = json.loads((run / "metrics.json").read_text())
        last_val = float(pd.read_csv(run / "history.csv")["val_accuracy"].iloc[-1])  # as the search's objective
        assert float(r["high_val_accuracy_seed3"]) == pytest.approx(last_val)  # the row is its own run's
        assert m["epochs_run"] == 2 and m["seed"] == 3  # the higher budget, the given seed
        final = json.loads((run / "DONE").read_text())  # every trial reports its training-free scores and start-up time
        import torch

        from nasattn.data import load_dataset
        from nasattn.fidelity import score_batch, zero_cost_scores
        from nasattn.models import build_model
        from nasattn.spec import ArchSpec

        torch.manual_seed(3)  # the trial's seed, set before it builds its network
        model = build_model(ArchSpec.from_yaml((run / "arch.yaml").read_text()))
        data = load_dataset("eurosat-mini", progress=False)  # the scores are the initial network's on 64 images
        expected = zero_cost_scores(model, *score_batch(data.images, data.labels, 64))
        assert {k: final[k] for k in expected} == pytest.approx(expected, rel=1e-3)
        first_epoch = float(pd.read_csv(run / "history.csv")["epoch_seconds"].iloc[0])
        assert final["time_to_first_epoch_s"] > first_epoch  # start-up plus the first epoch
    with open(fid / "agreement.csv", newline="") as f:
        agree = {a["predictor"]: a for a in csv.DictReader(f)}
    assert {"low_val_accuracy", "params", "flops", "zc_naswot"} <= set(agree)
    low = agree["low_val_accuracy"]
    assert low["n"] == "3"  # three re-trained trials: Fisher z needs 4 pairs (Spearman) and 5 (Kendall)
    assert low["spearman_ci_low"] == "" and low["kendall_ci_high"] == "" and low["note"] != ""
    assert "no Fisher-z interval below 5" in low["note"] or "constant" in low["note"]
    html = (fid / "report.html").read_text()
    assert "fidelity-scatter" in html and '"name":"presets"' in html
    with open(fid / "paired.csv", newline="") as f:  # the two other trials against the baseline preset's
        assert sorted(p["trial"] for p in csv.DictReader(f)) == sorted(r["trial"] for r in rows[1:])

    res = CliRunner().invoke(app, args)  # the same folder without --resume: refused
    assert res.exit_code == 2 and "--resume" in res.stderr
    lost = fid / "runs" / f"trial{rows[1]['trial']}" / "seed3"
    kept = {p: p.stat().st_mtime_ns for p in fid.glob("runs/*/seed3/DONE") if p.parent != lost}
    for p in lost.iterdir():
        p.unlink()
    lost.rmdir()
    res = CliRunner().invoke(app, [*args, "--resume"])
    assert res.exit_code == 0, res.output
    assert "1 of 3 runs to train" in res.stdout and (lost / "DONE").is_file()
    assert all(p.stat().st_mtime_ns == m for p, m in kept.items())  # finished runs were not retrained
    with open(fid / "fidelity.csv", newline="") as f:
        assert all(r["high_val_accuracy_seed3"] for r in csv.DictReader(f))


def _fidelity_args(search: Path, *extra: str) -> list[str]:
    """``nasattn fidelity`` of the best trial of ``search`` alone, one run at a time."""
    return ["fidelity", str(search), "--top", "1", "--random", "0", "--presets", "none", "--no-live",
            "--set", "resources.max_concurrent=1", *extra]


@pytest.mark.slow
def test_a_fidelity_study_whose_every_training_failed_exits_1_with_a_summary(tmp_path, module_ray, monkeypatch):
    """In-process under the module's one Ray (test_interrupts.py signals a fidelity study in a real process)."""
    monkeypatch.setenv("COLUMNS", "200")
    search = tmp_path / "search"
    _finished_search(search)
    res = CliRunner().invoke(app, _fidelity_args(search, "--set", "recipe.lr=1e30"))
    assert res.exit_code == 1, res.output
    assert "every training failed (1 of 1); first error: TrainingDivergedError" in res.stderr, res.stderr
    assert (search / "fidelity" / "fidelity.csv").is_file()


def test_one_high_budget_seed_is_warned_about(tmp_path):
    from rich.console import Console

    plan = _plan(tmp_path, [0.5, 0.6, 0.7], {2: "balanced"})
    for n, seeds in ((0, (0,)), (1, (0,)), (2, (0,))):
        for seed in seeds:
            _done(plan, n, seed, 0.6 + 0.1 * n)
    for seeds, warned in (([0], True), ([0, 1], False)):
        plan.seeds = seeds
        console = Console(record=True, width=300)
        write_outputs(plan, fidelity_rows(plan), console=console, n_resamples=50, report=False)
        assert ("the high budget has one seed (0)" in console.export_text()) is warned


def test_agreement_over_the_whole_search_marks_trials_not_re_trained():
    rows = [{"trial": t, "low_val_accuracy": low, "high_val_accuracy_mean": high}
            for t, low, high in ((0, 0.70, 0.80), (1, 0.60, 0.85), (2, 0.50, 0.75))]
    search = {0: 0.70, 1: 0.60, 2: 0.50, 3: 0.90, 4: 0.40}  # trial 3 ranks first in the search, never re-trained
    low = next(a for a in agreement(rows, top=2, n_resamples=50, search_low=search) if a["predictor"] == "low_val_accuracy")
    assert low["regret"] == pytest.approx(0.05)  # among the 3 re-trained: trial 0 first, 0.80 against 0.85
    assert low["search_trials"] == 5 and low["top2_not_retrained"] == 1
    assert low["top2_overlap_search"] == pytest.approx(0.5)  # search top 2 = {3, 0}; high top 2 = {1, 0}
    assert math.isnan(low["regret_search"])  # the search's first choice has no high-budget value
