"""What Ray Tune adds to one training: the same run directly and as a one-trial Tune experiment.

    python -m nasattn.bench.overhead --preset baseline --data eurosat-mini --epochs 20 --json out.json

Both sides train the same spec, recipe, data and seed with the same number of torch threads; the Tune
side goes through the same trainable as ``nasattn search`` (per-epoch reports and checkpoints
included). Reports the embedded Ray start-up, the trial's wall time and the added fraction.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from nasattn.bench.measure import machine_info
from nasattn.data import load_dataset
from nasattn.engine import train
from nasattn.presets import get_preset
from nasattn.tune import ray_session, run_grid


def tune_overhead(
    preset: str = "baseline",
    data: str = "eurosat-mini",
    epochs: int = 10,
    width_mult: float = 1.0,
    cpus: int | None = None,
    checkpoint_every: int = 1,
) -> dict[str, Any]:
    """Time one training directly and as a Tune trial; returns seconds and the overhead ratio."""
    import torch


    cpus = cpus or os.cpu_count() or 1
    p = get_preset(preset)
    spec = p.arch.scaled(width_mult)
    recipe = p.recipe.model_copy(update={"epochs": epochs, "early_stopping_patience": None})
    source = str(Path(data).resolve()) if Path(data).exists() else data
    load_dataset(source)  # fill the decode cache first: neither side pays for decoding

    torch.set_num_threads(cpus)
    t0 = time.perf_counter()
    direct = train(spec, recipe, load_dataset(source), seed=0, progress=False)
    direct_s = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        with ray_session(None, num_cpus=cpus):
            ray_start_s = time.perf_counter() - t0
            config = {"arch": spec.to_dict(), "recipe": recipe.to_dict(), "data": source, "seed": 0,
                      "checkpoint_every": checkpoint_every, "run_dir": str(Path(tmp) / "run")}
            t1 = time.perf_counter()
            grid = run_grid([config], storage_path=tmp, cpus_per_trial=cpus)
            trial_s = time.perf_counter() - t1
        total_s = time.perf_counter() - t0
        tuned = grid[0].metrics or {}
    return {
        "preset": preset, "width_mult": width_mult, "epochs": epochs, "data": source, "cpus": cpus,
        "checkpoint_every": checkpoint_every,
        "direct_seconds": direct_s, "direct_test_accuracy": direct.metrics["test_accuracy"],
        "ray_start_seconds": ray_start_s, "tune_trial_seconds": trial_s, "tune_total_seconds": total_s,
        "tune_test_accuracy": tuned.get("test_accuracy"),
        "added_fraction_trial": trial_s / direct_s - 1, "added_fraction_with_ray_start": total_s / direct_s - 1,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="baseline")
    ap.add_argument("--data", default="eurosat-mini")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--width-mult", type=float, default=1.0)
    ap.add_argument("--cpus", type=int, default=None)
    ap.add_argument("--checkpoint-every", type=int, default=1, help="Trial checkpoint every N epochs (0: none), as in a study.")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    res = {**tune_overhead(a.preset, a.data, a.epochs, a.width_mult, a.cpus, a.checkpoint_every),
           "machine": machine_info("cpu")}
    text = json.dumps(res, indent=2, default=str)
    print(text)
    if a.json:
        a.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
