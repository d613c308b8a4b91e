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
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import optuna
import pandas as pd

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
    from nasattn.fidelity.stats import correlation

    for col in ("params", "flops", "zc_naswot", "zc_synflow", "zc_gradnorm"):  # zero-cost vs the search's own metric
        c = correlation(trials[col], trials["val_epoch1"], "spearman", n_resamples=2000)
        print(f"  {col} vs epoch-1 val over all trials (spearman, n={c.n}): {c.value:.3f} [{c.ci_low:.2f}, {c.ci_high:.2f}]")
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
                "test_accuracy_p_adj", "mcnemar_b", "mcnemar_c", "mcnemar_p", "mcnemar_p_adj"]
        print("3 seeds vs balanced:")
        print(p[[c for c in cols if c in p.columns]].to_string(index=False))
    if control_dir and (Path(control_dir) / "fidelity.csv").is_file():
        shutil.copyfile(Path(control_dir) / "fidelity.csv", HERE / "control-fidelity.csv")
        c = control_table(t, Path(control_dir))
        c.to_csv(HERE / "control-paired.csv", index=False)
        cols = ["variant", "n", "test_accuracy_mean", "test_accuracy_std", "test_accuracy_diff", "test_accuracy_diff_ci_low",
                "test_accuracy_diff_ci_high", "test_accuracy_effect_dz", "test_accuracy_p", "test_accuracy_p_adj",
                "mcnemar_b", "mcnemar_c", "mcnemar_p_adj"]
        print("against the balanced preset under the study's recipe:")
        print(c[cols].to_string(index=False))


if __name__ == "__main__":
    main(*sys.argv[1:5])
