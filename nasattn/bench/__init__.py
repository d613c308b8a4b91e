"""``nasattn bench``: training throughput of nasattn's engine against a naive plain-PyTorch pipeline.

``run_bench(BenchOptions(...))`` measures both on the same preset, width, batch size and training images and
returns the JSON record; ``engine_throughput`` and ``naive_throughput`` measure one side each.
"""

from nasattn.bench.measure import BenchOptions, engine_throughput, machine_info, run_bench, time_to_accuracy
from nasattn.bench.naive import NaiveOptions, image_folder_root, naive_loader, naive_throughput, naive_train_set

__all__ = [
    "BenchOptions", "NaiveOptions", "engine_throughput", "image_folder_root", "machine_info", "naive_loader", "naive_throughput",
    "naive_train_set", "run_bench", "time_to_accuracy",
]
