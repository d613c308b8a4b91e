"""Print the tables of reports/ablation-path-cpu.md from an ablation path folder (path.json, path_summary.csv, path.csv).

    python reports/ablation-path-cpu/summarize.py reports/ablation-path-cpu
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd


def pts(v: float, sign: bool = False) -> str:
    return "-" if pd.isna(v) else (f"{v * 100:+.2f}" if sign else f"{v * 100:.2f}")


def main(folder: Path) -> None:
    info = json.loads((folder / "path.json").read_text())
    s = pd.read_csv(folder / "path_summary.csv")
    runs = pd.read_csv(folder / "path.csv")
    print(f"from {info['from']} to {info['to']}; seeds {info['seeds']}; {len(runs)} runs, "
          f"{(runs['status'] == 'COMPLETE').sum()} complete\n")
    print("| step | flipped | runs | test accuracy % [95% CI] | contribution, points [95% CI] | d_z | paired t p | Holm p "
          "| val. accuracy % (chose) | candidates (mean val. accuracy) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for _, r in s.iterrows():
        ci = f"{pts(r['test_accuracy_mean'])} [{pts(r['test_accuracy_ci_low'])}, {pts(r['test_accuracy_ci_high'])}]"
        low, high = pts(r["test_accuracy_diff_ci_low"], True), pts(r["test_accuracy_diff_ci_high"], True)
        diff = "-" if pd.isna(r["test_accuracy_diff"]) else f"{pts(r['test_accuracy_diff'], True)} [{low}, {high}]"
        dz = "-" if pd.isna(r["test_accuracy_effect_dz"]) else f"{r['test_accuracy_effect_dz']:.2f}"
        p = "-" if pd.isna(r["test_accuracy_p"]) else f"{r['test_accuracy_p']:.3g}"
        padj = "-" if pd.isna(r["test_accuracy_p_adj"]) else f"{r['test_accuracy_p_adj']:.3g}"
        cands = r["candidate_means"] if isinstance(r["candidate_means"], str) else ""
        print(f"| {r['step']} | {r['decision']} | {r['n']} | {ci} | {diff} | {dz} | {p} | {padj} | "
              f"{pts(r['val_accuracy_mean'])} | {cands} |")
    first, last = s.iloc[0], s.iloc[-1]
    by = runs[runs["status"] == "COMPLETE"].pivot_table(index="seed", columns="point", values="test_accuracy")
    if first["point"] in by and last["point"] in by:
        d = (by[last["point"]] - by[first["point"]]).dropna()
        print(f"\nFROM -> last point: {pts(d.mean(), True)} points (per seed: {', '.join(pts(x, True) for x in d)}); "
              f"sum of the contributions: {pts(s['test_accuracy_diff'].sum(), True)}")


def candidates(runs: pd.DataFrame) -> None:
    """Every candidate of every step: finished seeds, mean validation and test accuracy (descriptive, no test)."""
    done = runs[runs["status"] == "COMPLETE"]
    print("\n| step | candidate flip | finished seeds | mean val. accuracy % | mean test accuracy % | chosen |")
    print("|---|---|---|---|---|---|")
    for (step, decision), g in runs.groupby(["step", "decision"], sort=True):
        d = done[(done["step"] == step) & (done["decision"] == decision)]
        print(f"| {step} | {decision} | {len(d)} of {len(g)} | {pts(d['val_accuracy'].mean())} | "
              f"{pts(d['test_accuracy'].mean())} | {'yes' if g['chosen'].any() else ''} |")


def restat(folder: Path) -> None:
    """The chosen steps' statistics recomputed from path.csv with today's nasattn.stats (the same call the
    path makes: paired_vs_previous, Holm over the steps), each step's verdict written by nasattn.stats.verdict;
    written to steps-restat.csv beside the data."""
    from nasattn.ablation.path.stats import paired_vs_previous

    s = pd.read_csv(folder / "path_summary.csv").sort_values("step")
    runs = pd.read_csv(folder / "path.csv")
    rows = paired_vs_previous(runs.assign(variant=runs["point"]), list(s["point"]))
    keep = ["variant", "previous", "n", "test_accuracy_mean", "test_accuracy_diff", "test_accuracy_diff_ci_low",
            "test_accuracy_diff_ci_high", "test_accuracy_p", "test_accuracy_p_adj", "test_accuracy_perm_p",
            "test_accuracy_better", "test_accuracy_worse", "test_accuracy_detectable", "verdict"]
    table = pd.DataFrame(rows).reindex(columns=keep)
    table.insert(0, "decision", list(s["decision"]))
    table.to_csv(folder / "steps-restat.csv", index=False)
    print("\n| step | flipped | contribution, points [95% CI] | paired t p | Holm p | sign-flip p | better/worse seeds "
          "| verdict (nasattn.stats) |")
    print("|---|---|---|---|---|---|---|---|")
    for step, (_, r) in zip(s["step"], table.iterrows()):
        if pd.isna(r["previous"]):
            continue
        diff = f"{pts(r['test_accuracy_diff'], True)} [{pts(r['test_accuracy_diff_ci_low'], True)}, " \
               f"{pts(r['test_accuracy_diff_ci_high'], True)}]"
        num = {k: "-" if pd.isna(r[k]) else f"{r[k]:.3g}" for k in ("test_accuracy_p", "test_accuracy_p_adj",
                                                                     "test_accuracy_perm_p")}
        signs = "-" if pd.isna(r["test_accuracy_better"]) else \
            f"{int(r['test_accuracy_better'])}/{int(r['test_accuracy_worse'])}"
        print(f"| {step} | {r['decision']} | {diff} | {num['test_accuracy_p']} | {num['test_accuracy_p_adj']} | "
              f"{num['test_accuracy_perm_p']} | {signs} | {r['verdict']} |")


if __name__ == "__main__":
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent)
    main(folder)
    candidates(pd.read_csv(folder / "path.csv"))
    restat(folder)
