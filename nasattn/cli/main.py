"""``nasattn``: list blocks and presets, train one model, search, ablate, report, bench."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import click
import typer
from rich.table import Table
from typer.core import TyperGroup

from nasattn import __version__
from nasattn.cli import ablate_cmd, bench_cmd, report_cmd, search_cmd
from nasattn.cli.quick_exit import skip_final_collection
from nasattn.cli.stack import check_torch_stack
from nasattn.cli.common import check_device, plural, console, fail, handle_user_errors, parse_overrides
from nasattn.config import ConfigError, deep_merge
from nasattn.examples import copy_examples
from nasattn.presets import list_presets, load_arch_source, read_preset
from nasattn.protocols import apply_protocol
from nasattn.recipe import Recipe
from nasattn.registry import KINDS, list_blocks
from nasattn.rundir import current_command, lock_run_folder, probe_writable, train_output
from nasattn.schema import ExitCode

DEFAULT_TRAIN_OUT = Path("runs/train")
# ``nasattn --help`` lists the commands in the order a user meets them: train, search, ablate, then the rest.
COMMAND_ORDER = ("train", "search", "ablate", "fidelity", "report", "space", "presets", "blocks", "init", "bench", "doctor")


class OrderedCommands(TyperGroup):
    """The command group of ``nasattn``: commands in COMMAND_ORDER (others after, by name), descriptions uncut."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        rank = {name: i for i, name in enumerate(COMMAND_ORDER)}
        return sorted(super().list_commands(ctx), key=lambda name: (rank.get(name, len(rank)), name))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, cmd.get_short_help_str(limit=10_000)) for name in self.list_commands(ctx)
                if (cmd := self.get_command(ctx, name)) is not None and not cmd.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)  # wraps a long description instead of cutting it with "..."


app = typer.Typer(
    name="nasattn",
    cls=OrderedCommands,
    help="Neural architecture search and ablation for attention CNNs (EuroSAT and any ImageFolder dataset).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: flags without a <bool> placeholder
    context_settings={"max_content_width": 160},  # help as wide as the terminal (click's default stops at 80)
)


def _version(value: bool) -> None:
    if value:
        console.print(f"nasattn {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version.")) -> None:
    """nasattn command line."""


@app.command()
def blocks(kind: Optional[str] = typer.Argument(None, help="Only this kind (stem, conv, attention, fusion, head, dropblock, dropblock_law).")) -> None:
    """Print every registered block by kind with its parameters and defaults."""

    if kind is not None and kind not in KINDS:
        raise fail(f"unknown block kind {kind!r}; allowed: {', '.join(KINDS)}")
    for k in [kind] if kind else list(KINDS):
        table = Table(title=f"{k}: {KINDS[k]}", title_justify="left", show_lines=False)
        table.add_column("name", style="bold cyan", no_wrap=True)
        table.add_column("parameters (defaults)")
        table.add_column("description")
        for info in list_blocks(k):
            params = ", ".join(f"{p}={d!r}" for p, d in info.params.items()) or "-"
            table.add_row(info.name, params, info.doc.replace("``", ""))  # reST literals read as plain text
        console.print(table)


@app.command()
def presets() -> None:
    """List the presets: layers, parameters, FLOPs, the paper's accuracy, nasattn's choices and the
    differences from the author's code (read from the preset files; nothing is built)."""

    table = Table(title="presets (64x64 input, 10 classes)", title_justify="left")
    for col in ("preset", "layers", "convs", "params", "GFLOP", "paper acc."):
        table.add_column(col, justify="left" if col == "preset" else "right", no_wrap=True)
    files = {name: read_preset(name) for name in list_presets()}
    for name, data in files.items():
        prof, paper = data.get("profile") or {}, data.get("paper") or {}
        acc = paper.get("test_accuracy")
        table.add_row(
            name, str(prof.get("layers", "?")), str(prof.get("conv_layers", "?")),
            f"{prof['params'] / 1e6:.2f}M" if "params" in prof else "?",
            f"{prof['flops'] / 1e9:.2f}" if "flops" in prof else "?",
            f"{acc * 100:.2f}%" if isinstance(acc, (int, float)) else "-",
        )
    console.print(table)
    for name, data in files.items():
        notes = Table.grid(padding=(0, 1))
        notes.add_column(style="dim", no_wrap=True)
        notes.add_column()
        for key, value in (data.get("choices") or {}).items():
            notes.add_row("nasattn's choice", f"{key}: {value}")
        for line in data.get("differences") or []:
            notes.add_row("differs from author", str(line))
        for key, value in _dotted(data.get("paper_protocol") or {}).items():
            notes.add_row("author's setting", f"{key} = {value} (applied by --protocol paper)")
        console.print(f"\n[bold cyan]{name}[/]: {data.get('description', '')}", highlight=False)
        console.print(notes, highlight=False)


def _dotted(tree: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_dotted(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@app.command()
@handle_user_errors
def train(
    preset: Optional[str] = typer.Option(None, "--preset", "-p", help="A preset name (`nasattn presets` lists them)."),
    arch: Optional[Path] = typer.Option(None, "--arch", help="An ArchSpec YAML file (or a preset-style file with arch: and recipe:)."),
    data: Optional[str] = typer.Option(None, "--data", "-d", help="Folder or zip of images, or 'eurosat-mini'. Default: $NASATTN_DATA."),
    download: bool = typer.Option(False, "--download", help="Download EuroSAT with torchvision when no data is found."),
    epochs: Optional[int] = typer.Option(None, "--epochs", "-e", help="Override the recipe's epochs."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Override the recipe's batch size."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    seed: int = typer.Option(0, "--seed"),
    width_mult: float = typer.Option(1.0, "--width-mult", help="Scale every width (e.g. 0.25 for a CPU-sized net)."),
    subset: Optional[float] = typer.Option(None, "--subset", help="Train on a stratified fraction (0-1] of the dataset."),
    protocol: str = typer.Option("default", "--protocol", help="default (the preset's recipe, stratified split), paper (the author's split, augmentation, precision, DropBlock) or paper-as-run (paper without augmentation, as the author's code trained)."),
    overrides: Optional[list[str]] = typer.Option(None, "--set", help="Recipe override, e.g. --set lr=3e-4 (repeatable)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default runs/train, or the next free runs/train-N)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the run already in --out."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads for torch (default: all cores; give 1 to run two trainings side by side)."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="A progress bar (default: when stdout is a terminal); without it, one line per epoch.", show_default=False),
) -> None:
    """Train one architecture and write metrics.json, history.csv, predictions.csv, arch.yaml, recipe.yaml and model.pt."""
    progress = sys.stdout.isatty() if progress is None else progress
    if (preset is None) == (arch is None):
        raise ConfigError("give exactly one of --preset NAME or --arch FILE")
    spec, recipe_dict = load_arch_source(preset=preset, path=arch)

    spec, recipe_dict = apply_protocol(protocol, spec, recipe_dict)
    cli = {k: v for k, v in {"epochs": epochs, "batch_size": batch_size}.items() if v is not None}
    recipe = Recipe.from_dict(deep_merge(deep_merge(recipe_dict, cli), parse_overrides(overrides)), "recipe (--set)")
    check_torch_stack()  # after the arguments are checked: a typo is refused without importing torch
    spec = spec.scaled(width_mult)
    if subset is not None and not 0 < subset <= 1:
        raise ConfigError(f"--subset {subset}: must be in (0, 1]")
    check_device(device)
    run_dir, moved = train_output(out or DEFAULT_TRAIN_OUT, default=out is None, overwrite=overwrite)
    with lock_run_folder(run_dir):
        probe_writable(run_dir)
        if moved:
            console.print(moved, highlight=False, soft_wrap=True)
        _train_locked(spec, recipe, data, download, progress, subset, seed, width_mult, threads, device, arch, run_dir,
                      overrides, protocol)


def _train_locked(spec, recipe, data, download, progress, subset, seed, width_mult, threads, device, arch, out,
                  overrides, protocol) -> None:
    """The training part of ``train``: runs while the output folder is locked."""
    from nasattn.data import load_dataset  # lazy: keeps torch out of the CLI's start
    from nasattn.engine import TrainingDivergedError, train as train_model, write_run  # lazy: keeps torch out of the CLI's start

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    dataset = load_dataset(data, download=download, image_size=spec.input_size, progress=progress)
    if subset is not None and subset < 1:
        from nasattn.data import stratified_subset  # lazy: keeps torch out of the CLI's start

        dataset = dataset.subset(stratified_subset(dataset.labels, subset, seed=seed))
    from nasattn.engine import adapt_to_dataset  # lazy: keeps torch out of the CLI's start

    spec, recipe, notes = adapt_to_dataset(spec, recipe, dataset.classes,
                                           user_class_weights="class_weights" in parse_overrides(overrides))
    for note in [*dataset.notes, *notes]:  # what loading changed (sizes, bit depth), then what adapted
        console.print(f"note: {note}", highlight=False, soft_wrap=True, markup=False)
    console.print(
        f"[bold]nasattn train[/] {spec.name or arch} | data {dataset.source} ({len(dataset)} images, "
        f"{len(dataset.classes)} classes) | width x{width_mult} | {recipe.epochs} {plural(recipe.epochs, 'epoch')} | seed {seed}",
        soft_wrap=True,
    )
    try:
        callbacks = () if progress else (_log_epoch,)  # without a bar (logs, CI), one line per epoch
        result = train_model(spec, recipe, dataset, seed=seed, device=device, progress=progress, callbacks=callbacks)
    except TrainingDivergedError as e:
        raise fail(f"training diverged: {e}", ExitCode.FAILED) from None
    result.metrics["command"] = current_command()
    result.metrics["width_mult"] = width_mult
    result.metrics["protocol"] = protocol
    run_dir = write_run(out, result)
    _print_summary(result.metrics)
    written = sorted(p.name for p in run_dir.iterdir() if p.is_file() and not p.name.startswith("."))  # not the lock
    console.print(f"wrote {run_dir}/: {', '.join(written)}", highlight=False, soft_wrap=True)


def _log_epoch(epoch: int, row: dict, state: object) -> None:
    console.print(
        f"epoch {epoch}: loss {row['train_loss']:.4f} train acc {row['train_accuracy']:.4f} "
        f"val acc {row['val_accuracy']:.4f} lr {row['lr']:.2e} ({row['epoch_seconds']:.0f} s, {row['images_per_second']:.0f} img/s)",
        highlight=False,
        soft_wrap=True,
    )


def _print_summary(m: dict) -> None:
    table = Table(show_header=False, title="result (test split)")
    rows = [
        ("test accuracy", f"{m['test_accuracy'] * 100:.2f}%"),
        ("Cohen's kappa", f"{m['kappa']:.4f}"),
        ("macro F1", f"{m['macro_f1']:.4f}"),
        ("min class accuracy", f"{m['min_class_accuracy'] * 100:.2f}%"),
        ("confidence gap", "n/a" if m.get("confidence_gap") is None else f"{m['confidence_gap'] * 100:.2f} points"),
        ("ECE", f"{m['ece']:.4f}"),
        ("params / GFLOP", f"{m['params'] / 1e6:.2f}M / {(m.get('flops') or 0) / 1e9:.3f}"),
        ("train seconds", f"{m['train_seconds']:.1f}"),
    ]
    if m.get("alpha"):
        vals = list(m["alpha"].values())
        rows.append(("alpha s=sigmoid(a)", f"mean {sum(vals) / len(vals):.3f} over {len(vals)} blocks"))
        control = list((m.get("alpha_decay_only") or {}).values())
        if control:
            rows.append(("alpha, weight decay alone", f"mean {sum(control) / len(control):.3f}"))
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)


@app.command()
@handle_user_errors
def init(
    folder: Path = typer.Argument(Path("."), help="Where to copy studies/ and search_spaces/ (default: here)."),
    force: bool = typer.Option(False, "--force", help="Replace files that already exist."),
) -> None:
    """Copy the example studies and search spaces out of the package, for editing."""

    written = copy_examples(folder, force=force)
    console.print(f"wrote {len(written)} files into {folder}/studies and {folder}/search_spaces; "
                  f"try: nasattn search {folder / 'studies' / 'quickstart.yaml'}", highlight=False, soft_wrap=True)


# Commands of search, ablation, report and bench: their modules import Ray/Optuna/plotly lazily.
for _module in (ablate_cmd, bench_cmd, report_cmd, search_cmd):
    _module.register(app)
from nasattn.cli import doctor_cmd, fidelity_cmd  # noqa: E402 - commands that register themselves

doctor_cmd.register(app)
fidelity_cmd.register(app)

if __name__ == "__main__":  # pragma: no cover
    skip_final_collection()
    app()
