"""``nasattn doctor``: the first command to run on a new (GPU) machine.

Sections (each runs in its own process under a time box and records its own errors):

``env``          device name, compute capability, bf16 support, TF32/cuDNN flags, torch/CUDA/cuDNN
                 versions, which optional packages import (ray, optuna, pydantic, plotly, ...)
``correctness``  a few training steps of each preset with amp bf16, fp16 (+GradScaler) and off;
                 checkpoint -> resume equals uninterrupted training (CUDA generator state included);
                 DropBlock's dropped fraction on the device vs the CPU path
``syncs``        host-device synchronisations per training step (``torch.cuda.set_sync_debug_mode``)
``speed``        engine images/s and peak memory per preset at full width, and the naive
                 ImageFolder + DataLoader pipeline beside it (``nasattn.bench.run_bench``)
``packing``      1, 2, 4, 8 trainings at once on one device as plain processes: images/s in total
``compile``      eager vs ``torch.compile`` images/s, compile seconds, graph breaks, graphs, recompiles
``data``         only with ``--data``: a short real training on that dataset

Training data is synthetic uint8 images, except ``speed`` (the bundled eurosat-mini sample, which
the naive pipeline reads from files) and ``data``.  Without CUDA, or with ``--dry-run``, everything
runs at tiny sizes on the CPU (the test suite runs it).  Sections that need a package that is
missing (pydantic for specs and recipes) are recorded as ``skipped`` with the package to install.

Output: ``OUT/doctor.jsonl``, one JSON object per line, each with ``section``, ``check``,
``status`` (``ok``, ``fail``, ``error``, ``skipped``, ``timeout``) and the check's values; the last
line of each section is ``{"section": ..., "check": "section", "status": ..., "seconds": ...}``.
"""

from nasattn.doctor.runner import SECTIONS, DoctorResult, run_doctor

__all__ = ["SECTIONS", "DoctorResult", "run_doctor"]
