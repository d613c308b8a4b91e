"""The path on the console: one line per step with its contribution."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nasattn.ablation.path.greedy import PathResult

if TYPE_CHECKING:
    from rich.console import Console


def _pts(v: Any, sign: bool = False) -> str:
    return "-" if v is None else (f"{v * 100:+.2f}" if sign else f"{v * 100:.2f}")


def print_path(summary: list[dict[str, Any]], walked: PathResult, console: Console) -> None:
    """Step, decision flipped, test accuracy with CI, the paired difference to the previous point with CI and p."""
    from rich.table import Table

    table = Table(title="ablation path (test accuracy over seeds; difference paired by seed vs the previous point)",
                  title_justify="left")
    for col in ("step", "flipped", "n", "test acc. %", "95% CI", "contribution (points)", "diff 95% CI", "p", "p adj."):
        table.add_column(col, justify="left" if col == "flipped" else "right")
    for s in summary:
        ci = "-" if s.get("test_accuracy_ci_low") is None else \
            f"[{_pts(s['test_accuracy_ci_low'])}, {_pts(s['test_accuracy_ci_high'])}]"
        dci = "-" if s.get("test_accuracy_diff_ci_low") is None else \
            f"[{_pts(s['test_accuracy_diff_ci_low'], True)}, {_pts(s['test_accuracy_diff_ci_high'], True)}]"
        p, padj = s.get("test_accuracy_p"), s.get("test_accuracy_p_adj")
        table.add_row(str(s["step"]), s["decision"], str(s.get("n", 0)), _pts(s.get("test_accuracy_mean")), ci,
                      _pts(s.get("test_accuracy_diff"), True), dci, "-" if p is None else f"{p:.3g}",
                      "-" if padj is None else f"{padj:.3g}")
    console.print(table)
    if not walked.complete:
        console.print("the path stopped before TO (interrupted or a step failed)", highlight=False)
