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


if __name__ == "__main__":
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent)
    main(folder)
    candidates(pd.read_csv(folder / "path.csv"))
