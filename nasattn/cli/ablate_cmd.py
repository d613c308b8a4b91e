"""``nasattn ablate [FILE]``: seeded ablation of a base network, one change at a time, through Ray Tune."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.table import Table

from nasattn.cli.common import console, data_flag, handle_user_errors, interrupted_line, parse_overrides, parse_seeds
from nasattn.config import ConfigError, deep_merge
from nasattn.rundir import check_output_folder, current_command, lock_run_folder, resume_command
from nasattn.cli.stack import check_torch_stack
from nasattn.schema import PATH_CSV, PATH_SUMMARY_CSV, TrialStatus
from nasattn.spec import arch_summary
from nasattn.examples import resolve_study


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
    path: Optional[tuple[str, str]] = typer.Option(
        None, "--path", help="FROM TO: the greedy ablation path between two designs (each a preset, an arch YAML or "
        "a search trial SEARCH_DIR#N): flip one differing decision at a time, keep the best, until TO."),
) -> None:
    """Ablate a base network: variants that change one component each, trained for several seeds.

    With --path FROM TO: the greedy ablation path from FROM to TO instead (Fawcett & Hoos 2016)."""
    if path is not None and path[0] is not None:
        _ablate_path(path, ablation_file, preset, arch, seeds, data, epochs, width_mult, include, exclude, overrides,
                     out, resume, dry_run, live)
        return
    _ablate(ablation_file, preset, arch, seeds, data, epochs, width_mult, include, exclude, overrides, out, resume,
            retry_errors, dry_run, live)


@handle_user_errors
def _ablate(ablation_file: Path | None, preset: str | None, arch: Path | None, seeds: str | None, data: str | None,
            epochs: int | None, width_mult: float | None, include: str | None, exclude: str | None,
            overrides: list[str] | None, out: Path | None, resume: bool, retry_errors: bool, dry_run: bool,
            live: bool | None) -> None:
    from nasattn.ablation.run import run_ablation  # lazy: pandas/scipy load only when the CLI's start needs them

    if preset is not None and arch is not None:
        raise ConfigError("give at most one of --preset NAME or --arch FILE")
    if retry_errors and not resume:
        raise ConfigError("--retry-errors continues an ablation: add --resume")
    flags: dict[str, Any] = {}
    if preset is not None:
        flags["base"] = {"preset": preset}
    if arch is not None:
        flags["base"] = {"arch": str(arch.expanduser().resolve())}
    for key, value in (("include", _names(include)), ("exclude", _names(exclude))):
        if value is not None:
            flags[key] = value
    loaded = _settings(ablation_file, flags, seeds, data, epochs, width_mult, overrides, out)
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
    result = _locked(loaded, lambda command: run_ablation(
        loaded, resume=resume, retry_errors=retry_errors, console=console, live=live, command=command))
    if result.interrupted:  # AblationFailed (every trial failed) exits 1 through the harness
        console.print(f"wrote {result.csv}, {result.summary_csv}", highlight=False)
        interrupted_line(result, result.counts.get(TrialStatus.COMPLETE, 0) + result.counts.get(TrialStatus.ERROR, 0),
                         resume_command(loaded.output))
    counts = ", ".join(f"{v} {k.lower()}" for k, v in sorted(result.counts.items()))
    ray_start = f" (Ray start {result.ray_start_s:.1f}s)" if result.ray_start_s else ""
    console.print(f"finished: {counts} | wall {result.wall_s:.0f}s{ray_start}")
    console.print(f"wrote {result.csv}, {result.summary_csv}, {result.json}")
    if result.report is not None:
        console.print(f"report: {result.report}")


def _locked(loaded: Any, run: Callable[[str], Any]) -> Any:
    """``run(command)`` with the output folder locked (the command line recorded in the lock file)."""
    command = current_command()
    check_output_folder(loaded.output)
    with lock_run_folder(loaded.output, command):
        return run(command)


def _settings(ablation_file: Path | None, flags: dict[str, Any], seeds: str | None, data: str | None, epochs: int | None,
              width_mult: float | None, overrides: list[str] | None, out: Path | None) -> Any:
    """The ablation settings (file, --set, ``flags`` and the common flags) as a LoadedAblation."""
    from nasattn.ablation.study import load_ablation  # lazy: pandas/scipy load only when the CLI's start needs them

    flags = dict(flags)
    for key, value in (("seeds", parse_seeds(seeds)), ("data", data), ("epochs", epochs), ("width_mult", width_mult),
                       ("output", str(out) if out is not None else None)):
        if value is not None:
            flags[key] = value
    merged = deep_merge(parse_overrides(overrides), flags)
    if data is not None and ablation_file is not None:
        merged["data"] = data_flag(data)  # a flag's path is relative to the working directory
    if ablation_file is not None:

        ablation_file = resolve_study(ablation_file)
    if out is not None:
        check_output_folder(out)
    return load_ablation(ablation_file, merged)


@handle_user_errors
def _ablate_path(path: tuple[str, str], ablation_file: Path | None, preset: str | None, arch: Path | None,
                 seeds: str | None, data: str | None, epochs: int | None, width_mult: float | None,
                 include: str | None, exclude: str | None, overrides: list[str] | None, out: Path | None,
                 resume: bool, dry_run: bool, live: bool | None) -> None:
    from nasattn.ablation.path import resolve_endpoint  # lazy: pandas/scipy load only when the CLI's start needs them
    from nasattn.ablation.path.run import describe_decisions, plan_path, run_path  # lazy: keeps torch out of the CLI's start

    for flag, value in (("--preset", preset), ("--arch", arch), ("--include", include), ("--exclude", exclude)):
        if value is not None:
            raise ConfigError(f"{flag} does not apply to --path FROM TO (the path's ends are FROM and TO)")
    loaded = _settings(ablation_file, {}, seeds, data, epochs, width_mult, overrides, out)
    plan = plan_path(loaded, resolve_endpoint(path[0]), resolve_endpoint(path[1]))
    a = loaded.ablation
    k, n = len(plan.decisions), plan.trainings_per_seed
    console.print(f"[bold]nasattn ablate --path[/] {plan.from_label} -> {plan.to_label} | {k} differing decisions | "
                  f"seeds {', '.join(map(str, a.seeds))} | epochs {a.epochs or 'from the recipes'} | "
                  f"width x{a.width_mult:g} | output {loaded.output}" + (" | resume" if resume else ""),
                  highlight=False, soft_wrap=True)
    table = Table(title="decisions FROM -> TO", title_justify="left")
    for col in ("decision", "change (FROM -> TO)"):
        table.add_column(col, overflow="fold")
    for d in describe_decisions(plan):
        table.add_row(d["decision"], d["change"])
    console.print(table, markup=False)
    console.print(f"{k} differing decisions cost 1 (FROM) + {' + '.join(str(i) for i in range(k, 0, -1))} = {n} "
                  f"trainings per seed; x {len(a.seeds)} seeds = {n * len(a.seeds)} trainings"
                  + (" (dry run: nothing trained)" if dry_run else ""), highlight=False)
    if dry_run:
        return
    result = _locked(loaded, lambda command: run_path(  # PathError (a step with no result) exits 1
        plan, resume=resume, console=console, live=live, command=command))
    if result.interrupted:
        interrupted_line(result, sum(r.get("status") in (TrialStatus.COMPLETE, TrialStatus.ERROR) for r in result.rows),
                         resume_command(loaded.output))
    console.print(f"wrote {result.output / PATH_CSV}, {result.output / PATH_SUMMARY_CSV} | wall {result.wall_s:.0f}s")
    if result.report is not None:
        console.print(f"report: {result.report}")


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
