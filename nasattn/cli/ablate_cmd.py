"""``nasattn ablate [FILE]``: seeded ablation of a base network, one change at a time, through Ray Tune."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from nasattn.cli.common import console, data_flag, handle_user_errors, interrupted_line, parse_overrides, parse_seeds
from nasattn.config import deep_merge
from nasattn.cli.stack import check_torch_stack
from nasattn.schema import TrialStatus
from nasattn.spec import arch_summary


def _names(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [x.strip() for x in value.split(",") if x.strip()]


def ablate(
    ablation_file: Optional[Path] = typer.Argument(None, help="An ablation YAML (see studies/ablation-quick.yaml). Without it: flags only."),
    preset: Optional[str] = typer.Option(None, "--preset", "-p", help="Base network: a preset name (`nasattn presets` lists them; default balanced)."),
    arch: Optional[Path] = typer.Option(None, "--arch", help="Base network from a spec YAML (or a file with arch: and recipe:)."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Seeds, e.g. 0,1,2 (default 0,1,2)."),
    data: Optional[str] = typer.Option(None, "--data", "-d", help="Folder or zip of images, or 'eurosat-mini'. Default: $NASATTN_DATA."),
    epochs: Optional[int] = typer.Option(None, "--epochs", "-e", help="Epochs of every variant."),
    width_mult: Optional[float] = typer.Option(None, "--width-mult", help="Scale every width (e.g. 0.25 on a CPU)."),
    include: Optional[str] = typer.Option(None, "--include", help="Only these built-in variants, e.g. no_attention,se_only."),
    exclude: Optional[str] = typer.Option(None, "--exclude", help="Not these variants."),
    overrides: Optional[list[str]] = typer.Option(None, "--set", help="Override a field of the ablation file, e.g. --set resources.max_concurrent=2 (repeatable)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (overrides the file's output)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted ablation in the output folder (finished runs are not retrained)."),
    retry_errors: bool = typer.Option(False, "--retry-errors", help="With --resume: run the failed trials again."),
    dry_run: bool = typer.Option(False, "--dry-run", "--list", help="Print the variants and trials, run nothing."),
    live: Optional[bool] = typer.Option(None, "--live/--no-live", help="Live table (default: when on a terminal)."),
) -> None:
    """Ablate a base network: variants that change one component each, trained for several seeds."""
    _ablate(ablation_file, preset, arch, seeds, data, epochs, width_mult, include, exclude, overrides, out, resume,
            retry_errors, dry_run, live)


@handle_user_errors
def _ablate(ablation_file: Path | None, preset: str | None, arch: Path | None, seeds: str | None, data: str | None,
            epochs: int | None, width_mult: float | None, include: str | None, exclude: str | None,
            overrides: list[str] | None, out: Path | None, resume: bool, retry_errors: bool, dry_run: bool,
            live: bool | None) -> None:
    from nasattn.ablation.run import run_ablation
    from nasattn.ablation.study import load_ablation
    from nasattn.config import ConfigError
    from nasattn.rundir import check_output_folder, current_command, lock_run_folder, resume_command

    if preset is not None and arch is not None:
        raise ConfigError("give at most one of --preset NAME or --arch FILE")
    if retry_errors and not resume:
        raise ConfigError("--retry-errors continues an ablation: add --resume")
    flags = _flags(preset, arch, seeds, data, epochs, width_mult, include, exclude, out)
    merged = deep_merge(parse_overrides(overrides), flags)
    if data is not None and ablation_file is not None:
        merged["data"] = data_flag(data)  # a flag's path is relative to the working directory
    if ablation_file is not None:
        from nasattn.examples import resolve_study

        ablation_file = resolve_study(ablation_file)  # a bundled file by name: ablation-quick
    if out is not None:
        check_output_folder(out)
    loaded = load_ablation(ablation_file, merged)
    a = loaded.ablation
    plan = loaded.plan()
    base = f"preset {a.base.preset}" if a.base.preset else f"arch {a.base.arch}"
    console.print(
        f"[bold]nasattn ablate[/] {a.name} | base {base} | {len(plan.variants)} variants x {len(a.seeds)} seeds "
        f"(seeds {', '.join(map(str, a.seeds))}) | epochs {a.epochs or 'from the recipes'} | width x{a.width_mult:g} | "
        f"output {loaded.output}" + (" | resume" if resume else ""),
        highlight=False, soft_wrap=True,
    )
    if dry_run:
        _print_plan(loaded, plan)
        console.print(f"{len(plan.variants) * len(a.seeds)} trials (dry run: nothing trained)")
        return
    check_torch_stack()
    command = current_command()
    check_output_folder(loaded.output)
    with lock_run_folder(loaded.output, command):
        result = run_ablation(loaded, resume=resume, retry_errors=retry_errors, console=console, live=live,
                              command=command)  # AblationFailed (every trial failed): exit 1
    if result.interrupted:
        finished = result.counts.get(TrialStatus.COMPLETE, 0) + result.counts.get(TrialStatus.ERROR, 0)
        console.print(f"wrote {result.csv}, {result.summary_csv}", highlight=False)
        interrupted_line(result, finished, resume_command(loaded.output))
    counts = ", ".join(f"{v} {k.lower()}" for k, v in sorted(result.counts.items()))
    console.print(f"finished: {counts} | wall {result.wall_s:.0f}s (Ray start {result.ray_start_s:.1f}s)")
    console.print(f"wrote {result.csv}, {result.summary_csv}, {result.json}")
    if result.report is not None:
        console.print(f"report: {result.report}")


def _flags(preset: str | None, arch: Path | None, seeds: str | None, data: str | None, epochs: int | None,
           width_mult: float | None, include: str | None, exclude: str | None, out: Path | None) -> dict[str, Any]:
    """The ablation file's fields that the command's flags set (those given)."""
    flags: dict[str, Any] = {}
    if preset is not None:
        flags["base"] = {"preset": preset}
    if arch is not None:
        flags["base"] = {"arch": str(arch.expanduser().resolve())}
    for key, value in (("seeds", parse_seeds(seeds)), ("data", data), ("epochs", epochs), ("width_mult", width_mult),
                       ("include", _names(include)), ("exclude", _names(exclude)),
                       ("output", str(out) if out is not None else None)):
        if value is not None:
            flags[key] = value
    return flags


def _print_plan(loaded: Any, plan: Any) -> None:
    table = Table(title="variants", title_justify="left")
    table.add_column("variant", style="bold cyan")
    table.add_column("change")
    table.add_column("architecture", overflow="fold")
    from rich.markup import escape

    scale = {"width_mult": loaded.ablation.width_mult}  # written as in search: the widths, then x0.25
    for name, (spec, recipe) in plan.variants.items():  # descriptions hold [lists]: not markup
        weights = recipe.class_weights if isinstance(recipe.class_weights, str) else "list"
        table.add_row(name, escape(plan.descriptions.get(name, "")), escape(arch_summary({'arch': spec.to_dict(), **scale}, with_name=False) + f" | class_weights={weights}"))
    console.print(table)
    for name, diffs in getattr(plan, "differences", {}).items():  # what each variant changes in the base
        console.print(f"{name} differs from base in: " + "; ".join(diffs), highlight=False, soft_wrap=True, markup=False)
    for name, why in plan.skipped.items():
        console.print(f"skipped {name}: {why}", highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    """Add ``ablate`` to the nasattn CLI."""
    app.command("ablate")(ablate)
