"""``nasattn doctor``: the first command to run on a new (GPU) machine.

Sections (each runs in its own process under a time box and records its own errors):

``env``          device name, compute capability, bf16 support, TF32/cuDNN flags, torch/CUDA/cuDNN
                 versions, which optional packages import (ray, optuna, pydantic, plotly, ...)
``correctness``  a few training steps of each preset with amp bf16, fp16 (+GradScaler) and off;
                 checkpoint -> resume equals uninterrupted training (CUDA generator state included);
                 DropBlock's dropped fraction on the device vs the CPU path
``syncs``        host-device synchronisations per training step (``torch.cuda.set_sync_debug_mode``;
                 fail above 0)
``speed``        engine images/s (its defaults, and float32 NCHW as the naive side), peak memory per
                 pipeline, aten ops per step, per preset at full width, and the naive
                 ImageFolder + DataLoader pipeline beside it (``nasattn.bench.run_bench``)
``packing``      1, 2, 4, 8 trainings at once on one device as plain processes: images/s in total
``compile``      the engine's own training eager vs ``compile: true`` (its amp and layout): images/s,
                 compile seconds, graphs and recompiles over two epochs; graph breaks (train, eval)
``data``         only with ``--data``: a short real training on that dataset
``accuracy``     only with ``--data``: the balanced preset with its own recipe (the paper protocol) until
                 97.2% test accuracy or the time box: accuracy per epoch, time to 97.2% (or the best
                 reached and when), images/s and achieved TFLOP/s (3 x forward FLOPs per image)

Training data is synthetic uint8 images, except ``speed`` (synthetic PNGs in a temporary folder, or
in a dry run the bundled eurosat-mini sample, which the naive pipeline reads from files), ``data``
and ``accuracy``.  Without CUDA, or with ``--dry-run``, everything
runs at tiny sizes on the CPU (the test suite runs it).  Sections that need a package that is
missing (pydantic for specs and recipes) are recorded as ``skipped`` with the package to install.

Output: ``OUT/doctor.jsonl`` and ``OUT/summary.txt`` (nothing else), one JSON object per line, each with ``section``, ``check``,
``status`` (``ok``, ``fail``, ``error``, ``skipped``, ``timeout``) and the check's values; the last
line of each section is ``{"section": ..., "check": "section", "status": ..., "seconds": ...}``.
Every check is skipped (reason: the time box) rather than started when too little of its section's
box is left. ``--bundle DIR`` builds the offline bundle (nasattn.doctor.bundle) instead.
"""

from nasattn.doctor.runner import SECTIONS, DoctorResult, run_doctor

__all__ = ["SECTIONS", "DoctorResult", "run_doctor"]
