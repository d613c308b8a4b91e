"""Recompute the tables of reports/rediscovery-cpu.md from a rediscovery run's folders.

    python reports/rediscovery-cpu/summarize.py runs/search/rediscover-cpu \
        runs/search/rediscover-cpu/fidelity runs/search/rediscover-cpu/fidelity-3seeds \
        runs/search/rediscover-cpu/fidelity-balanced-study-recipe

Writes, beside this script: search-trials.csv (every trial of the search: preset, architecture
summary, state, epochs, validation accuracy after each epoch, rank after epoch 1 and at its last
epoch, test accuracy, params, FLOPs, training-free scores), and copies of the fidelity study's
fidelity.csv / agreement.csv and the 3-seed study's fidelity.csv / paired.csv; with the control
folder (the balanced preset under the study's recipe), control-paired.csv: every 3-seed run against
that control with the statistics of ``nasattn ablate``. Prints the numbers quoted in the report.

    python reports/rediscovery-cpu/summarize.py --restat

recomputes the report's statistics from the committed CSVs alone (no run folder, no retraining) with
today's nasattn.stats: restat-paired.csv (the 3-seed designs against the balanced preset and against
the control: paired differences over seeds, Holm over the test accuracy of the designs of each table,
exact sign-flip p, sign count, P(better), resolution, verdict; the committed per-run McNemar counts
carried over as they are) and restat-agreement.csv (rank correlations with Fisher-z CIs and exact
permutation p, the high budget as seed 0 alone and as the mean of the seeds each trial has, top-3
overlap and regret among the re-trained trials and over the whole search). The committed data has no
per-image predictions, so no two-level bootstrap interval is computed here.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

from nasattn.stats import analyze, correlation, not_retrained, rediscovery_verdict, regret, top_k_overlap
from nasattn.tune.progress import arch_summary

HERE = Path(__file__).resolve().parent


def search_table(search_dir: Path) -> pd.DataFrame:
    run = json.loads((search_dir / "run.json").read_text()) if (search_dir / "run.json").is_file() else {}
    study = (run.get("study") or {}).get("name")
    width = float(((run.get("study") or {}).get("train") or {}).get("width_mult") or 1.0)
    storage = f"sqlite:///{search_dir / 'study.db'}"
    name = study or optuna.get_all_study_summaries(storage)[0].study_name
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    st = optuna.load_study(study_name=name, storage=storage)
    rows = []
    for t in st.trials:
        a = t.user_attrs
        iv = t.intermediate_values
        arch = json.loads(a["arch"]) if isinstance(a.get("arch"), str) else a.get("arch")
        rows.append({
            "number": t.number, "preset": a.get("seed_point") or "", "state": t.state.name,
            "arch": arch_summary({"arch": arch, "width_mult": width}) if arch else "",
            "class_weights": (json.loads(a["recipe"]) if isinstance(a.get("recipe"), str) else a.get("recipe") or {}).get("class_weights"),
            "epochs": max(iv) if iv else 0,
            "val_epoch1": iv.get(1), "val_epoch2": iv.get(2), "val_last": iv[max(iv)] if iv else None,
            "test_accuracy": a.get("test_accuracy"), "params": a.get("params"), "flops": a.get("flops"),
            "zc_naswot": a.get("zc_naswot"), "zc_synflow": a.get("zc_synflow"), "zc_gradnorm": a.get("zc_gradnorm"),
            "time_to_first_epoch_s": a.get("time_to_first_epoch_s"), "duration_s": a.get("duration_s"),
        })
    df = pd.DataFrame(rows)
    done = df["val_epoch1"].notna()
    df.loc[done, "rank_epoch1"] = df.loc[done, "val_epoch1"].rank(ascending=False, method="min").astype(int)
    df.loc[done, "rank_last"] = df.loc[done, "val_last"].rank(ascending=False, method="min").astype(int)
    two = df["val_epoch2"].notna()
    df.loc[two, "rank_epoch2_among_promoted"] = df.loc[two, "val_epoch2"].rank(ascending=False, method="min").astype(int)
    return df


def control_table(three: Path, control: Path) -> pd.DataFrame:
    """The 3-seed runs and the control's, against the control (as ``nasattn ablate``)."""
    from nasattn.fidelity.run import analyze_runs, run_record

    runs = []
    for folder, label in ((control, "balanced, study recipe"), (three, None)):
        for d in sorted((folder / "runs").glob("trial*/seed*")):
            name = label or ("balanced, own recipe" if d.parent.name == "trial2" else d.parent.name)
            runs.append(run_record(d, name, int(d.name[4:])))
    runs = [r for r in runs if r is not None]
    variants = list(dict.fromkeys(r["variant"] for r in runs))
    return pd.DataFrame(list(analyze_runs(runs, variants, "balanced, study recipe").values()))


def main(search_dir: str, fidelity_dir: str, three_dir: str, control_dir: str | None = None) -> None:
    s, f, t = Path(search_dir), Path(fidelity_dir), Path(three_dir)
    trials = search_table(s)
    trials.to_csv(HERE / "search-trials.csv", index=False)
    for src, dst in ((f / "fidelity.csv", "fidelity.csv"), (f / "agreement.csv", "agreement.csv"),
                     (f / "paired.csv", "fidelity-paired.csv"), (f / "fidelity.json", "fidelity.json"),
                     (t / "fidelity.csv", "threeseed-fidelity.csv"), (t / "paired.csv", "threeseed-paired.csv"),
                     (t / "fidelity.json", "threeseed-fidelity.json")):
        if src.is_file():
            shutil.copyfile(src, HERE / dst)
    n1 = int(trials["val_epoch1"].notna().sum())
    print(f"search: {len(trials)} trials, {n1} with epoch 1, {int(trials['val_epoch2'].notna().sum())} promoted to epoch 2")
    for _, r in trials[trials["preset"] != ""].iterrows():
        print(f"  preset {r['preset']} (#{r['number']}): epoch-1 {r['val_epoch1']:.4f} rank {r['rank_epoch1']:.0f}/{n1}, "
              f"last {r['val_last']:.4f} rank {r['rank_last']:.0f}/{n1}, epochs {r['epochs']}")
    for col in ("params", "flops", "zc_naswot", "zc_synflow", "zc_gradnorm"):  # zero-cost vs the search's own metric
        c = correlation(trials[col], trials["val_epoch1"], "spearman", n_resamples=2000)
        print(f"  {col} vs epoch-1 val over all trials (spearman, n={c.n}): {c.value:.3f} Fisher-z [{c.ci_low:.2f}, "
              f"{c.ci_high:.2f}]")
    print("  top 5 by last value:")
    for _, r in trials.sort_values("val_last", ascending=False).head(5).iterrows():
        print(f"    #{r['number']} {r['val_last']:.4f} ({r['epochs']} ep) {r['preset']} {r['arch']} cw={r['class_weights']}")
    if (f / "fidelity.csv").is_file():
        fid = pd.read_csv(f / "fidelity.csv", keep_default_na=False, na_values=[""])
        fid["rank_low"] = fid["low_val_accuracy"].rank(ascending=False, method="min")
        fid["rank_high"] = fid["high_val_accuracy_mean"].rank(ascending=False, method="min")
        print("fidelity (seed 0):")
        print(fid[["trial", "group", "preset", "low_val_accuracy", "high_val_accuracy_mean", "high_test_accuracy_mean",
                   "rank_low", "rank_high"]].to_string(index=False))
        # every sampled trial after the same epoch (1, which all reached): ASHA's stops do not mix budgets here
        ep1 = fid.merge(trials[["number", "val_epoch1"]], left_on="trial", right_on="number")
        for method in ("spearman", "kendall"):
            c = correlation(ep1["val_epoch1"], ep1["high_val_accuracy_mean"], method, n_resamples=2000)
            print(f"  epoch-1 val vs high ({method}, n={c.n}): {c.value:.3f} [{c.ci_low:.2f}, {c.ci_high:.2f}] p={c.p_value:.3g}")
        agree = pd.read_csv(f / "agreement.csv")
        print(agree[["predictor", "n", "spearman", "spearman_ci_low", "spearman_ci_high", "kendall", "kendall_ci_low",
                     "kendall_ci_high", *[c for c in agree.columns if c.endswith("_overlap")], "regret"]].to_string(index=False))
    if (t / "paired.csv").is_file():
        p = pd.read_csv(t / "paired.csv")
        cols = ["trial", "preset", "n", "test_accuracy_mean", "base_test_accuracy_mean", "test_accuracy_diff",
                "test_accuracy_diff_ci_low", "test_accuracy_diff_ci_high", "test_accuracy_effect_dz", "test_accuracy_p",
                "test_accuracy_p_adj", "verdict"]
        print("3 seeds vs balanced:")
        print(p[[c for c in cols if c in p.columns]].to_string(index=False))
    if control_dir and (Path(control_dir) / "fidelity.csv").is_file():
        shutil.copyfile(Path(control_dir) / "fidelity.csv", HERE / "control-fidelity.csv")
        c = control_table(t, Path(control_dir))
        c.to_csv(HERE / "control-paired.csv", index=False)
        cols = ["variant", "n", "test_accuracy_mean", "test_accuracy_std", "test_accuracy_diff", "test_accuracy_diff_ci_low",
                "test_accuracy_diff_ci_high", "test_accuracy_effect_dz", "test_accuracy_p", "test_accuracy_p_adj",
                "verdict"]
        print("against the balanced preset under the study's recipe:")
        print(c[cols].to_string(index=False))


N_TEST = 2025  # test images of the split (fidelity.json: subset 0.5, 70/15/15, seed 42)


def seed_rows(fid: pd.DataFrame, label: callable) -> list[dict]:
    """One row per (trial, seed) with a high-budget test accuracy, as nasattn.stats.analyze reads them."""
    rows = []
    for _, r in fid.iterrows():
        for col in [c for c in fid.columns if c.startswith("high_test_accuracy_seed")]:
            if pd.notna(r[col]):
                rows.append({"variant": label(r), "seed": int(col.rsplit("seed", 1)[1]), "status": "COMPLETE",
                             "test_accuracy": float(r[col]), "n_test": N_TEST})
    return rows


def restat_paired() -> pd.DataFrame:
    """The 3-seed designs against the balanced preset (own recipe) and against the control (study recipe)."""
    three = pd.read_csv(HERE / "threeseed-fidelity.csv", keep_default_na=False, na_values=[""])
    control = pd.read_csv(HERE / "control-fidelity.csv", keep_default_na=False, na_values=[""])
    committed = {"balanced, own recipe": {f"trial{r['trial']}": r for _, r in pd.read_csv(HERE / "threeseed-paired.csv").iterrows()},
                 "balanced, study recipe": {r["variant"]: r for _, r in pd.read_csv(HERE / "control-paired.csv").iterrows()}}
    name = lambda r: "balanced, own recipe" if r["preset"] == "balanced" else f"trial{r['trial']}"  # noqa: E731
    own = seed_rows(three, name)
    tables = []
    for table, base, extra in (("vs balanced (own recipe)", "balanced, own recipe", []),
                               ("vs control (balanced, study recipe)", "balanced, study recipe",
                                seed_rows(control, lambda r: "balanced, study recipe"))):
        rows = pd.DataFrame(extra + own)
        variants = list(dict.fromkeys(rows["variant"]))
        out = pd.DataFrame(analyze(rows, variants, base, correction="holm"))
        out.insert(0, "table", table)
        out["mcnemar_per_run_committed"] = [committed[base].get(v, {}).get("mcnemar_per_run") if v != base else None
                                            for v in out["variant"]]
        out["boot_note"] = "no two-level bootstrap: the committed data has no per-image predictions"
        tables.append(out[out["variant"] != base])
    return pd.concat(tables, ignore_index=True)


def restat_agreement() -> pd.DataFrame:
    """Rank agreement of the cheap rankings with the 8-epoch validation accuracy (seed 0; mean of the seeds)."""
    fid = pd.read_csv(HERE / "fidelity.csv", keep_default_na=False, na_values=[""])
    three = pd.read_csv(HERE / "threeseed-fidelity.csv", keep_default_na=False, na_values=[""])
    search = pd.read_csv(HERE / "search-trials.csv", keep_default_na=False, na_values=[""])
    fid = fid.merge(search[["number", "val_epoch1"]], left_on="trial", right_on="number")
    means = dict(zip(three["trial"], three["high_val_accuracy_mean"]))
    fid["high_seed_mean"] = [means.get(t, v) for t, v in zip(fid["trial"], fid["high_val_accuracy_mean"])]
    out = []
    for high, high_label in (("high_val_accuracy_seed0", "seed 0"), ("high_seed_mean", "mean of the seeds (3 for trials 2, 20, 25)")):
        by_trial = dict(zip(fid["trial"], fid[high]))
        for col, whole in (("low_val_accuracy", "val_last"), ("val_epoch1", "val_epoch1"), ("zc_gradnorm", None),
                           ("params", None), ("flops", None), ("zc_naswot", None), ("zc_synflow", None)):
            row = {"high": high_label, "predictor": col}
            for method in ("spearman", "kendall"):
                c = correlation(fid[col], fid[high], method, n_resamples=2000)
                row.update({"n": c.n, method: c.value, f"{method}_p": c.p_value, f"{method}_p_method": c.p_method,
                            f"{method}_ci_low": c.ci_low, f"{method}_ci_high": c.ci_high,
                            f"{method}_boot_low": c.boot_low, f"{method}_boot_high": c.boot_high, "note": c.note})
            row.update(top3_overlap=top_k_overlap(fid[col], fid[high], 3), regret=regret(fid[col], fid[high]))
            if whole:
                xs = search[whole].to_numpy(dtype=float)
                hs = np.array([by_trial.get(t, np.nan) for t in search["number"]], dtype=float)
                row.update(search_trials=int(np.isfinite(xs).sum()), top3_overlap_search=top_k_overlap(xs, hs, 3),
                           top3_not_retrained=not_retrained(xs, hs, 3), regret_search=regret(xs, hs))
            out.append(row)
    return pd.DataFrame(out)


def restat() -> None:
    paired = restat_paired()
    paired.to_csv(HERE / "restat-paired.csv", index=False)
    agree = restat_agreement()
    agree.to_csv(HERE / "restat-agreement.csv", index=False)
    pd.set_option("display.width", 250)
    cols = ["table", "variant", "n", "test_accuracy_mean", "test_accuracy_diff", "test_accuracy_diff_ci_low",
            "test_accuracy_diff_ci_high", "test_accuracy_p", "test_accuracy_p_adj", "test_accuracy_perm_p",
            "test_accuracy_better", "test_accuracy_p_improve", "test_accuracy_p_improve_ci_low",
            "test_accuracy_detectable", "test_accuracy_runs_needed"]
    print(paired[cols].to_string(index=False))
    for _, r in paired.iterrows():
        print(f"{r['table']}: {r['variant']}: {r['verdict']}")
    best = paired[(paired["table"] == "vs balanced (own recipe)") & (paired["variant"] == "trial25")].iloc[0]
    print("rediscovery verdict (search's best, trial 25, vs the balanced preset):",
          rediscovery_verdict(25, best.to_dict()))
    print(agree[["high", "predictor", "n", "spearman", "spearman_ci_low", "spearman_ci_high", "spearman_p",
                 "kendall", "kendall_ci_low", "kendall_ci_high", "kendall_p", "spearman_boot_low", "spearman_boot_high",
                 "top3_overlap", "regret", "search_trials", "top3_overlap_search", "top3_not_retrained",
                 "regret_search"]].to_string(index=False))
    search = pd.read_csv(HERE / "search-trials.csv", keep_default_na=False, na_values=[""])
    for col in ("params", "flops", "zc_naswot", "zc_synflow", "zc_gradnorm"):
        c = correlation(search[col], search["val_epoch1"], "spearman", n_resamples=2000)
        print(f"  {col} vs epoch-1 val, all {c.n} trials: spearman {c.value:.3f} Fisher-z [{c.ci_low:.2f}, {c.ci_high:.2f}] "
              f"p={c.p_value:.2g} ({c.p_method}); bootstrap [{c.boot_low:.2f}, {c.boot_high:.2f}]")


if __name__ == "__main__":
    if sys.argv[1:] == ["--restat"]:
        restat()
    else:
        main(*sys.argv[1:5])
