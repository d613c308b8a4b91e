"""``nasattn search STUDY.yaml`` and ``nasattn space FILE``."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from nasattn.cli.common import plural, console, data_flag, handle_user_errors, interrupted_line, parse_overrides
from nasattn.cli.stack import check_torch_stack
from nasattn.schema import ARCH_FILE, VAL_ACCURACY_LAST, TrialStatus
from nasattn.spec import arch_summary
from nasattn.config import ConfigError, read_yaml, to_yaml
from nasattn.examples import bundled_space, resolve_study
from nasattn.presets import get_preset, list_presets
from nasattn.rundir import check_output_folder, current_command, lock_run_folder, resume_command
from nasattn.search.run import resolved_study, run_search
from nasattn.search.space import arch_point, check_constraints, describe_dim, iter_dims, load_space, NotInSpace, preset_points, Rejected, sample_spec, space_size
from nasattn.search.study import load_study
from nasattn.secrets import mask_secrets
from nasattn.tune.resources import concurrency
from nasattn.tune.session import is_embedded


def _short_float(v: Any) -> Any:
    """A sampled float with 4 significant digits (``0.00123456789`` -> ``0.001235``); other values as they are."""
    return float(f"{v:.4g}") if isinstance(v, float) else v


def _fmt_size(n: float) -> str:
    if math.isinf(n):
        return "infinite"
    return f"{n:,}" if n < 1e9 else f"{n:.3g}"


def search(
    study_file: Path = typer.Argument(..., help="A study YAML, or the name of a bundled study (quickstart, eurosat-cpu, eurosat; see `nasattn init`)."),
    overrides: Optional[list[str]] = typer.Option(None, "--set", help="Override a study field, e.g. --set budget.trials=20 (repeatable)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted search in the output folder."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (overrides the study's output)."),
    live: Optional[bool] = typer.Option(None, "--live/--no-live", help="Live table (default: when on a terminal)."),
    data: Optional[str] = typer.Option(None, "--data", "-d", help="Folder or zip of images, or 'eurosat-mini' (overrides the study's data)."),
    download: bool = typer.Option(False, "--download", help="Download EuroSAT with torchvision when no data is found."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved study, the space's size, the seed points and the plan; start nothing."),
) -> None:
    """Run a neural architecture search (Ray Tune + Optuna) described by a study file."""
    _search(study_file, overrides, resume, out, live, data, download, dry_run)


@handle_user_errors
def _search(study_file: Path, overrides: list[str] | None, resume: bool, out: Path | None, live: bool | None,
            data: str | None = None, download: bool = False, dry_run: bool = False) -> None:

    study_file = resolve_study(study_file)
    merged = parse_overrides(overrides)
    if data is not None:
        merged["data"] = data_flag(data)
    if download:
        merged["download"] = True
    if out is not None:
        check_output_folder(out)
    loaded = load_study(study_file, merged, output=out)
    check_output_folder(loaded.output)
    check_gpu_study(loaded, study_file)
    s = loaded.study
    objectives = ", ".join(f"{o.mode} {o.metric}" for o in s.objectives)
    if dry_run:
        print_plan(loaded)
        return
    check_torch_stack()
    console.print(
        f"[bold]nasattn search[/] {s.name} | {s.budget.trials} {plural(s.budget.trials, 'trial')} x {s.budget.epochs} "
        f"{plural(s.budget.epochs, 'epoch')} | {objectives} | "
        f"sampler {s.sampler.type} (seed {s.sampler.seed}) | early stopping {s.early_stopping.type} | "
        f"output {loaded.output}" + (" | resume" if resume else ""),
        highlight=False, soft_wrap=True,
    )
    with lock_run_folder(loaded.output, mask_secrets(current_command())):
        result = run_search(loaded, resume=resume, console=console, live=live)  # SearchFailed: exit 1
    counts = ", ".join(f"{v} {k.lower()}" for k, v in sorted(result.counts.items()))
    if result.interrupted:
        finished = sum(result.counts.get(k, 0) for k in (TrialStatus.COMPLETE, TrialStatus.STOPPED, TrialStatus.FAILED))
        console.print(f"wrote {result.trials_csv}" + (f", {result.report}" if result.report else ""), highlight=False)
        interrupted_line(result, finished, mask_secrets(resume_command(loaded.output)))
    console.print(f"finished: {counts} | wall {result.wall_s:.0f}s (Ray start {result.ray_start_s:.1f}s)"
                  + (f" | {result.rejected} samples rejected by constraints" if result.rejected else ""))
    if result.best:
        b = result.best
        test = b.get("test_accuracy")
        console.print(
            f"best: trial {b['number']} val_accuracy {b[VAL_ACCURACY_LAST] * 100:.2f}%"
            + (f", test {test * 100:.2f}%" if isinstance(test, (int, float)) else "")
            + (f" -> {result.best_dir}/{ARCH_FILE}" if result.best_dir else "")
        )
    console.print(f"wrote {result.trials_csv}" + (f", {result.report}" if result.report else ""))


def print_plan(loaded: Any) -> None:
    """``search --dry-run``: the resolved study, the space's size, the seed points and the trials/concurrency/time
    plan. Starts no Ray and imports none."""

    s, sp = loaded.study, loaded.space
    study = {k: v for k, v in resolved_study(loaded).items() if k != "space"}
    console.print(f"resolved study ({loaded.source}; output {loaded.output}):", highlight=False, soft_wrap=True)
    console.print(to_yaml(study), highlight=False, markup=False, soft_wrap=True)
    arch_size, total = space_size(sp, recipe=False), space_size(sp)
    console.print(f"space {sp.name or '(inline)'}: {len(list(iter_dims(sp)))} parameters; {_fmt_size(arch_size)} "
                  f"architectures (before constraints); {_fmt_size(total)} points with the training hyper-parameters",
                  highlight=False, soft_wrap=True)
    seeds = preset_points(sp, list(s.seeds.presets))  # a preset outside the space is a ConfigError here
    width = {"width_mult": s.train.width_mult}
    for i, name in enumerate(seeds):
        arch = get_preset(name).arch.to_dict() if name not in sp.points else {}
        console.print(f"seed #{i} {name}: {arch_summary({'arch': arch, **width}, with_name=False) or 'a point of the space'}",
                      highlight=False, soft_wrap=True, markup=False)
    if s.seeds.points:
        console.print(f"seed points #{len(seeds)}-#{len(seeds) + len(s.seeds.points) - 1}: "
                      f"{len(s.seeds.points)} more parameter sets from seeds.points", highlight=False)
    res, b = s.resources, s.budget
    if is_embedded(s.ray.address):
        cpus = res.num_cpus or os.cpu_count() or 1
        gpus = res.num_gpus if res.num_gpus is not None else (0 if not res.gpus_per_trial else _visible_gpus())
        conc = concurrency(res, {"CPU": float(cpus), "GPU": float(gpus)})
        where = f"embedded Ray on {cpus} CPUs, {gpus} GPUs: up to {conc} {plural(conc, 'trial')} at once"
    else:
        conc, where = None, f"Ray cluster {s.ray.address} (not contacted in a dry run): concurrency set by its resources"
    waves = f", about {math.ceil(b.trials / conc)} rounds of {conc}" if conc else ""
    limit = f"stops after {b.time_limit:g} s" if b.time_limit else "no time limit"
    console.print(f"plan: {b.trials} {plural(b.trials, 'trial')} ({len(seeds) + len(s.seeds.points)} seeded) x up to "
                  f"{b.epochs} {plural(b.epochs, 'epoch')} | {where}{waves} | early stopping {s.early_stopping.type} | "
                  f"{limit} | per trial {res.cpus_per_trial:g} CPU, {res.gpus_per_trial:g} GPU", highlight=False, soft_wrap=True)
    console.print("dry run: nothing started, nothing written", highlight=False)


def _visible_gpus() -> int:
    import torch

    return torch.cuda.device_count()


def check_gpu_study(loaded: Any, study_file: Path) -> None:
    """On a machine without GPUs, a study that asks for GPUs is refused with the CPU study to use instead."""

    res = loaded.study.resources
    if not res.gpus_per_trial or not is_embedded(loaded.study.ray.address):
        return
    import torch

    if torch.cuda.is_available():
        return
    b = loaded.study.budget
    cost = (f"{b.trials} {plural(b.trials, 'trial')} x {b.epochs} {plural(b.epochs, 'epoch')} at width "
            f"x{loaded.study.train.width_mult:g}" + ("" if b.time_limit else " with no time limit"))
    raise ConfigError(
        f"{study_file}: resources.gpus_per_trial = {res.gpus_per_trial:g}, but this machine has no GPU. "
        f"This study ({cost}) is sized for GPUs. Use the CPU proxy instead: "
        "nasattn search eurosat-cpu (studies/eurosat-cpu.yaml: 1/8 width, 3 epochs, 45 minutes), "
        "or --set resources.gpus_per_trial=0 to run this one on CPUs anyway"
    )


def space(
    file: Path = typer.Argument(..., help="A search-space YAML (or a study YAML: its space is used), or a bundled one by name (eurosat, quickstart)."),
    samples: int = typer.Option(3, "--samples", "-n", min=0, help="How many sampled architectures to print."),
    seed: int = typer.Option(0, "--seed"),
    show_dims: bool = typer.Option(True, "--dims/--no-dims", help="List every parameter of the space."),
) -> None:
    """Print a search space's size, its parameters, a few sampled specs and which presets it contains."""
    _space(file, samples, seed, show_dims)


@handle_user_errors
def _space(file: Path, samples: int, seed: int, show_dims: bool) -> None:

    sp = _load_any_space(file)
    dims = list(iter_dims(sp))
    arch_size, total = space_size(sp, recipe=False), space_size(sp)
    continuous = [d.name for d in dims if describe_dim(d.dim).startswith("float") and "step" not in describe_dim(d.dim)]
    console.print(f"[bold]{sp.name or file}[/]: {len(dims)} parameters; "
                  f"{_fmt_size(arch_size)} architectures (before constraints); "
                  f"{_fmt_size(total)} points with the training hyper-parameters"
                  + (f" (infinite: continuous {', '.join(continuous)})" if math.isinf(total) else ""),
                  highlight=False, soft_wrap=True)
    if sp.constraints.active():
        console.print("constraints: " + ", ".join(f"{k} in [{lo}, {hi}]" for k, (lo, hi) in sp.constraints.active().items()))
    if show_dims:
        _print_dims(dims)
    _print_presets(sp)
    if samples:
        _print_samples(sp, samples, seed)


def _load_any_space(file: Path):
    """The search space of a space file or of a study file (a bundled one by name: eurosat, quickstart)."""

    if not Path(file).exists():  # a bundled space or study by name: eurosat, quickstart

        file = bundled_space(str(file)) or resolve_study(file)
    raw = read_yaml(file)
    if isinstance(raw, dict) and "space" in raw and "stages" not in raw:

        return load_study(file).space
    return load_space(file)


def _print_dims(dims: list) -> None:
    """The table of the space's Optuna parameters (stage 2..N folded into stageN)."""

    table = Table(title="parameters (Optuna names)", title_justify="left")
    table.add_column("parameter", style="cyan", overflow="fold")
    table.add_column("values")
    table.add_column("exists when")
    for d in dims:
        if d.name.startswith("stage") and d.name[5:6].isdigit() and not d.name.startswith("stage1.") and "." in d.name:
            continue  # stage2..N repeat stage1's parameters
        cond = d.condition.replace("stage1", "stageN")
        if d.name.startswith("stage1."):
            cond = " and ".join(x for x in (cond, "N <= stages.count") if x)
        table.add_row(d.name.replace("stage1.", "stageN."), describe_dim(d.dim), cond)
    console.print(table)


def _print_presets(sp) -> None:
    """The table of which presets are points of the space (and why not)."""

    presets = Table(title="presets", title_justify="left")
    presets.add_column("preset")
    presets.add_column("a point of this space?")
    for name in list_presets():
        p = get_preset(name)
        try:
            arch_point(sp, p.arch)
            check_constraints(sp, p.arch)
            presets.add_row(name, "[green]yes[/]")
        except (NotInSpace, Rejected) as e:
            presets.add_row(name, f"[red]no[/]: {e}")
    console.print(presets)


def _print_samples(sp, samples: int, seed: int) -> None:
    """``samples`` specs drawn from the space by Optuna's RandomSampler, with their size and recipe."""
    import optuna  # lazy: optuna is a heavy optional package

    from nasattn.models import build_model, profile_model  # lazy: keeps torch out of the CLI's start

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    shown, rejected = 0, 0
    while shown < samples and rejected < 1000:
        trial = study.ask()
        try:
            spec, recipe = sample_spec(trial, sp)
        except Rejected:
            rejected += 1
            continue
        shown += 1
        prof = profile_model(build_model(spec))
        console.print(
            f"[bold]sample {shown}[/]: {arch_summary({'arch': spec.to_dict()})} | {spec.layers} layers, "
            f"{spec.conv_layers} conv | {prof['params'] / 1e6:.2f}M params, {prof['flops'] / 1e9:.3f} GFLOP"
            , highlight=False, soft_wrap=True,
        )
        # YAML to copy: never wrapped at the console's width, and its [lists] are not rich markup
        console.print(spec.to_yaml(), highlight=False, soft_wrap=True, markup=False)
        if recipe:
            console.print(to_yaml({"recipe": {k: _short_float(v) for k, v in recipe.items()}}), highlight=False, soft_wrap=True,
                          markup=False)
    if rejected:
        console.print(f"({rejected} samples rejected by constraints)")


def register(app: typer.Typer) -> None:
    """Add ``search`` and ``space`` to the nasattn CLI."""
    app.command("search")(search)
    app.command("space")(space)
