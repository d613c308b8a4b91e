"""``nasattn bench``: images/s and seconds per epoch of nasattn's engine vs a naive plain-PyTorch pipeline."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from nasattn.cli.common import console, handle_user_errors


def bench(
    ctx: typer.Context,
    preset: str = typer.Option("balanced", "--preset", "-p", help="A preset name (`nasattn presets` lists them)."),
    width_mult: float = typer.Option(0.25, "--width-mult", help="Scale every width."),
    data: Optional[str] = typer.Option(None, "--data", "-d", help="Folder or zip of images, or 'eurosat-mini'. Default: $NASATTN_DATA."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    steps: int = typer.Option(20, "--steps", min=1, help="Timed training steps per pipeline (after the warm-up)."),
    warmup: int = typer.Option(3, "--warmup", min=0, help="Untimed warm-up steps per pipeline."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Time this many full epochs instead of --steps."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="torch.set_num_threads for both pipelines (default: torch's)."),
    compile: bool = typer.Option(False, "--compile/--no-compile", help="torch.compile the engine's model (the naive side never compiles)."),
    workers: Optional[int] = typer.Option(None, "--workers", min=0, help="Naive DataLoader workers (default 2 on CPU)."),
    augment: str = typer.Option("flips", "--augment", help="flips or none, for both pipelines."),
    channels_last: str = typer.Option("auto", "--channels-last", help="Engine memory format: auto (CUDA, or a CPU under bf16), on, off."),
    amp: str = typer.Option("auto", "--amp", help="Engine autocast: auto (bf16 on CUDA and on CPUs with native bf16), off, bf16, fp16."),
    to_accuracy: Optional[float] = typer.Option(None, "--to-accuracy", help="Also time the engine until test accuracy reaches this fraction (e.g. 0.9)."),
    max_epochs: Optional[int] = typer.Option(None, "--max-epochs", min=1, help="Epoch cap for --to-accuracy (default: the preset's epochs)."),
    seed: int = typer.Option(0, "--seed"),
    count_compiled: bool = typer.Option(False, "--count-compiled", help="Also count the kernel launches per step of the "
                                        "compiled model (torch.compile with Inductor on the CPU: a minute or more)."),
    json_file: Optional[Path] = typer.Option(None, "--json", help="Write the record (results + machine info) to this JSON file."),
) -> None:
    """Training throughput of nasattn's engine vs a plain ImageFolder + DataLoader pipeline, on this machine."""
    kw = dict(locals())
    kw.pop("ctx")
    _bench(command=_command_line(ctx), **kw)


def _command_line(ctx: typer.Context) -> str:
    """The invocation as options given on the command line (``sys.argv`` is another program's under a test runner)."""
    import shlex

    words = ["nasattn", ctx.info_name or "bench"]
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name)
        if param.name not in ctx.params or getattr(source, "name", None) != "COMMANDLINE":
            continue
        value = ctx.params[param.name]
        if getattr(param, "is_flag", False):
            flags = param.opts if value else param.secondary_opts
            words.append(flags[0] if flags else param.opts[0])
        else:
            words += [param.opts[0], shlex.quote(str(value))]
    return " ".join(words)


@handle_user_errors
def _bench(command: str, **kw: object) -> None:
    from nasattn.bench import BenchOptions, run_bench  # lazy: keeps torch out of the CLI's start

    json_file = kw.pop("json_file")
    preset, width, data = kw.pop("preset"), kw.pop("width_mult"), kw.pop("data")
    console.print(
        f"[bold]nasattn bench[/] {preset} x{width} | data {data or '$NASATTN_DATA'} | batch {kw['batch_size']} | "
        + (f"{kw['epochs']} epoch(s)" if kw["epochs"] else f"{kw['steps']} steps after {kw['warmup']} warm-up")
        + f" | device {kw['device']}",
        highlight=False, soft_wrap=True,
    )
    record = run_bench(
        BenchOptions(preset=preset, width_mult=width, data=data, **kw), json_path=json_file, command=command,  # type: ignore[arg-type]
        log=lambda msg: console.print(f"  {msg}", highlight=False, soft_wrap=True),
    )
    _print(record)
    if json_file is not None:
        console.print(f"wrote {json_file}")


def _fmt(x: float | None, spec: str) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _print(record: dict) -> None:
    cfg, m = record["config"], record["machine"]
    table = Table(title=f"training throughput: {cfg['preset']} x{cfg['width_mult']}, batch {cfg['batch_size']}, "
                        f"{cfg['n_train']} training images, {cfg['device']}")
    for col in ("pipeline", "images/s", "s/epoch", "ratio", "settings"):
        table.add_column(col, justify="right" if col in ("images/s", "s/epoch", "ratio") else "left")
    naive_ips = record["pipelines"]["naive"]["images_per_second"]
    for name, r in record["pipelines"].items():
        s = r["settings"]
        if name.startswith("engine"):
            what = f"uint8 cache on device, amp {s['amp']}, channels_last {s['channels_last']}, compile {s['compile']}"
        else:
            what = f"ImageFolder + DataLoader({s['num_workers']} workers), float32 NCHW"
        epoch = _fmt(r["seconds_per_epoch"], ".1f") + ("" if r["seconds_per_epoch_measured"] else " (est.)")
        table.add_row(name, _fmt(r["images_per_second"], ".1f"), epoch,
                      _fmt(r["images_per_second"] / naive_ips if naive_ips else None, ".2f") + "x", what)
    console.print(table)
    console.print(f"engine / naive: [bold]{_fmt(record['ratio'], '.2f')}x[/] | {m['cpu']} ({m['cpus_usable']} cores usable, "
                  f"{m['torch_threads']} torch threads, load {', '.join(f'{v:.1f}' for v in m['load_average'] or [])})"
                  + (f" | GPU {m['gpu']}" if m["gpu"] else "") + f" | torch {m['torch']}", highlight=False, soft_wrap=True)
    ops, compiled = record.get("ops_per_step"), record.get("ops_per_step_compiled")
    if ops:
        console.print(f"engine: {ops['ops_per_step']:.0f} aten ops per training step (eager; about the kernel launches "
                      "on a GPU)", highlight=False)
    if compiled and compiled.get("ops_per_step") is not None:
        console.print(f"engine compiled: {compiled['ops_per_step']:.0f} per training step (the model's forward+backward: "
                      f"{compiled['launches_forward_backward']} kernel launches in {compiled['graphs']} graphs vs "
                      f"{compiled['eager_ops_forward_backward']} aten ops eager)", highlight=False)
    acc = record.get("to_accuracy")
    if acc:
        if acc["reached"]:
            console.print(f"engine reached test accuracy {acc['target']:.2%} after {acc['epochs']} epochs in "
                          f"[bold]{acc['seconds']:.1f} s[/] (test evaluation time excluded)", highlight=False)
        else:
            best = acc["best_test_accuracy"]
            console.print(f"engine did not reach test accuracy {acc['target']:.2%} within {acc['max_epochs']} epochs "
                          f"(best {_fmt(best, '.2%')})", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``bench`` to the nasattn CLI."""
    app.command("bench")(bench)
