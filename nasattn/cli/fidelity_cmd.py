"""``nasattn fidelity SEARCH_DIR``: how well a search's cheap ranking predicts a higher budget."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from nasattn.cli.common import console, handle_user_errors, interrupted_line, parse_overrides, parse_seeds
from nasattn.config import ConfigError
from nasattn.schema import (
    FIDELITY_BASE_PRESET, FIDELITY_DIR, FIDELITY_METRICS, FIDELITY_RANDOM, FIDELITY_TOP, PAIRED_CSV, VAL_ACCURACY_LAST,
)
from nasattn.rundir import current_command, lock_run_folder, resume_command


def fidelity(
    search_dir: Path = typer.Argument(..., help="The output folder of a finished `nasattn search`."),
    top: int = typer.Option(FIDELITY_TOP, "--top", help="Re-train the k best finished trials."),
    n_random: int = typer.Option(FIDELITY_RANDOM, "--random", help="Re-train k random other finished trials."),
    presets: str = typer.Option("all", "--presets", help="Preset seed trials to re-train: all, none, or names, e.g. balanced."),
    base_preset: str = typer.Option(FIDELITY_BASE_PRESET, "--base-preset", help=f"{PAIRED_CSV} compares every trial with this preset's trial."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Seeds of the higher budget, e.g. 0,1 (default: the study's seed)."),
    overrides: Optional[list[str]] = typer.Option(None, "--set", help="Higher budget, e.g. --set recipe.epochs=12 (default: 4x the search's epochs); also width_mult, subset, resources.max_concurrent."),
    width_mult: Optional[float] = typer.Option(None, "--width-mult", help="Width multiplier of the higher budget (default: the search's)."),
    subset: Optional[float] = typer.Option(None, "--subset", help="Stratified data fraction of the higher budget (default: the search's)."),
    data: Optional[str] = typer.Option(None, "--data", "-d", help="Dataset (default: the study's data, or $NASATTN_DATA)."),
    metric: str = typer.Option(VAL_ACCURACY_LAST, "--metric", help="Compared metric: val_accuracy (the search's) or test_accuracy."),
    sample_seed: int = typer.Option(0, "--sample-seed", help="Seed of the random sample of trials."),
    low_epoch: Optional[int] = typer.Option(None, "--low-epoch", help="Compare the search's val_accuracy after this epoch, which every trial reached (default: each trial's last)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help=f"Output folder (default SEARCH_DIR/{FIDELITY_DIR})."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted fidelity study (finished runs are not retrained)."),
    reuse: Optional[Path] = typer.Option(None, "--reuse", help="Another fidelity folder: its finished runs of the same trial, seed and budget are copied, not retrained."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the sample and the budget, run nothing."),
    live: Optional[bool] = typer.Option(None, "--live/--no-live", help="Live table (default: when on a terminal)."),
) -> None:
    """Re-train a sample of a search's trials at a higher budget and measure how well the cheap ranking predicts it."""
    _fidelity(search_dir, top, n_random, presets, base_preset, seeds, overrides, width_mult, subset, data, metric, sample_seed,
              low_epoch, out, resume, reuse, dry_run, live)


@handle_user_errors
def _fidelity(search_dir: Path, top: int, n_random: int, presets: str, base_preset: str, seeds: str | None, overrides: list[str] | None,
              width_mult: float | None, subset: float | None, data: str | None, metric: str, sample_seed: int,
              low_epoch: int | None, out: Path | None, resume: bool, reuse: Path | None, dry_run: bool, live: bool | None) -> None:
    from nasattn.fidelity.run import plan_fidelity, run_fidelity  # lazy: keeps torch out of the CLI's start

    if metric not in FIDELITY_METRICS:
        raise ConfigError(f"--metric {metric!r}: allowed: {', '.join(FIDELITY_METRICS)}")
    names: bool | list[str] = {"all": True, "none": False}.get(presets.strip(), [p.strip() for p in presets.split(",") if p.strip()])
    plan = plan_fidelity(search_dir, top=top, n_random=n_random, presets=names, seeds=parse_seeds(seeds, "0,1"),
                         overrides=parse_overrides(overrides), width_mult=width_mult, subset=subset, data=data, out=out,
                         sample_seed=sample_seed, metric=metric, low_epoch=low_epoch)
    plan.base_preset = base_preset
    groups = ", ".join(f"{s.number} ({s.group}{': ' + s.seed_point if s.seed_point else ''})" for s in plan.sample)
    console.print(
        f"[bold]nasattn fidelity[/] {plan.search_dir} | {len(plan.sample)} trials x {len(plan.seeds)} seeds | "
        f"low: {plan.low_epochs} epochs -> high: recipe {plan.recipe}, width x{plan.width_mult:g}"
        + (f", subset {plan.subset:g}" if plan.subset else "") + f" | output {plan.out}" + (" | resume" if resume else ""),
        highlight=False, soft_wrap=True,
    )
    console.print(f"trials: {groups}", highlight=False, soft_wrap=True)
    if dry_run:
        return
    with lock_run_folder(plan.out):  # FidelityFailed (every training failed): exit 1
        result = run_fidelity(plan, resume=resume, console=console, live=live, command=current_command(), reuse=reuse)
    if result.interrupted:
        console.print(f"wrote {result.csv}, {result.agreement_csv}", highlight=False)
        interrupted_line(result, result.counts["finished"], resume_command(plan.out))
    for a in result.agreement:
        if a["predictor"].startswith("low_"):
            console.print(
                f"cheap ranking vs higher budget (n={a['n']}): Spearman {a['spearman']:.3f} "
                f"[{a['spearman_ci_low']:.2f}, {a['spearman_ci_high']:.2f}], Kendall {a['kendall']:.3f}, "
                f"top-{plan.top} overlap {a[f'top{plan.top}_overlap']:.0%}, regret {a['regret'] * 100:.2f} points",
                highlight=False, markup=False,
            )
    console.print(f"{result.counts['finished']} runs finished, {result.counts['missing']} missing | wall {result.wall_s:.0f}s | "
                  f"wrote {result.csv}, {result.agreement_csv}" + (f", {result.report}" if result.report else ""))


def register(app: typer.Typer) -> None:
    """Add ``fidelity`` to the nasattn CLI."""
    app.command("fidelity")(fidelity)
