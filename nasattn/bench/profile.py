"""Where one training step of a preset spends its time: torch.profiler's operator table.

    python -m nasattn.bench.profile --preset balanced --width-mult 0.25 --threads 2 --amp bf16

Builds the preset (random weights), then times and profiles a few forward + backward + AdamW steps on
a random batch: images/s and the operators with the most self CPU time. The tables it produced, and
what they led to, are in ``reports/bench.md``.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

from nasattn.blocks.dropblock import ScheduledDropBlock, fitted_block_size
from nasattn.engine.trainer import use_channels_last
from nasattn.models import build_model
from nasattn.presets import get_preset


def profile_step(preset: str = "balanced", width_mult: float = 0.25, batch_size: int = 64, steps: int = 3,
                 amp: str = "bf16", threads: int | None = None, rows: int = 15,
                 torchvision_dropblock: bool = False, channels_last: str = "auto") -> tuple[float, str]:
    """Images/s over ``steps`` training steps (after 2 warm-up steps) and the profiler's operator table.

    ``torchvision_dropblock`` runs DropBlock through torchvision's ``drop_block2d`` instead of
    nasattn's CPU version (same law), to see what the replacement saves. ``channels_last`` is the
    engine's choice (auto: under bf16).
    """
    return _profile_step(preset, width_mult, batch_size, steps, amp, threads, rows, channels_last, torchvision_dropblock)


def torchvision_ops_law(x: torch.Tensor, p: torch.Tensor | float, block_size: int) -> torch.Tensor:
    """nasattn's ``torchvision`` DropBlock law drawn by ``torchvision.ops.drop_block2d`` itself (dense mask)."""
    from torchvision.ops import drop_block2d


    size = fitted_block_size(x, block_size)
    return x if size < 1 else drop_block2d(x, float(p), size, False, 1e-6, True)


def _profile_step(preset: str, width_mult: float, batch_size: int, steps: int, amp: str, threads: int | None,
                  rows: int, channels_last: str, torchvision_dropblock: bool = False) -> tuple[float, str]:
    if threads:
        torch.set_num_threads(threads)
    spec = get_preset(preset).arch.scaled(width_mult)
    torch.manual_seed(0)
    model = build_model(spec).train()
    if torchvision_dropblock:
        for m in model.modules():
            if isinstance(m, ScheduledDropBlock) and m.law == "torchvision":
                m.set_law(torchvision_ops_law)
    fmt = torch.contiguous_format
    if use_channels_last(channels_last, torch.device("cpu"), torch.bfloat16 if amp == "bf16" else None):
        fmt = torch.channels_last
        model = model.to(memory_format=fmt)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    x = torch.randn(batch_size, spec.in_channels, spec.input_size, spec.input_size).contiguous(memory_format=fmt)
    y = torch.randint(0, spec.num_classes, (batch_size,))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp == "bf16"):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    images_per_second = steps * batch_size / (time.perf_counter() - t0)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    return images_per_second, prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="balanced")
    parser.add_argument("--width-mult", type=float, default=0.25)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--amp", choices=["bf16", "off"], default="bf16")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--torchvision-dropblock", action="store_true", help="DropBlock through torchvision's drop_block2d.")
    parser.add_argument("--channels-last", choices=["auto", "on", "off"], default="auto",
                        help="memory format, as the engine picks it (auto: channels_last under bf16)")
    args = parser.parse_args()
    ips, table = profile_step(args.preset, args.width_mult, args.batch_size, args.steps, args.amp, args.threads,
                              torchvision_dropblock=args.torchvision_dropblock, channels_last=args.channels_last)
    dropblock = "torchvision's DropBlock" if args.torchvision_dropblock else "nasattn's DropBlock"
    print(f"{args.preset} x{args.width_mult:g}, batch {args.batch_size}, amp {args.amp}, "
          f"channels_last {args.channels_last}, {dropblock}, {torch.get_num_threads()} threads: {ips:.1f} images/s (CPU)")
    print(table)


if __name__ == "__main__":
    main()
