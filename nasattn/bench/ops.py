"""aten ops per training step: a CPU stand-in for a GPU's kernel launches (host work per step).

Each aten op that reaches the dispatcher is about one kernel launch on a GPU, so a change that adds
host work per step shows here without a GPU. The count comes from the engine's own training
(``nasattn.engine.train``, its amp, layout and DropBlock): ops of a run with ``k + n`` steps minus
ops of a run with ``k`` steps, divided by ``n``, so setup and the epoch's bookkeeping cancel out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch.utils._python_dispatch import TorchDispatchMode  # no public per-op counting hook in torch

from nasattn.engine import train

if TYPE_CHECKING:
    from nasattn.data import ImageDataset
    from nasattn.recipe import Recipe
    from nasattn.spec import ArchSpec


class OpCounter(TorchDispatchMode):
    """Counts every aten op call dispatched while active (``total``, and ``by_op`` by op name)."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0
        self.by_op: dict[str, int] = {}

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.total += 1
        name = str(func.overloadpacket.__name__)
        self.by_op[name] = self.by_op.get(name, 0) + 1
        return func(*args, **(kwargs or {}))


def _ops_of_run(spec: ArchSpec, recipe: Recipe, data: ImageDataset, steps: int, device: str) -> OpCounter:
    counter = OpCounter()
    with counter:
        train(spec, recipe.model_copy(update={"epochs": 1}), data, seed=0, device=device, progress=False,
              max_steps_per_epoch=steps, evaluate=False)
    return counter


def ops_per_step(spec: ArchSpec, recipe: Recipe, data: ImageDataset, *, device: str = "cpu", base: int = 1,
                 extra: int = 2) -> dict[str, Any]:
    """aten ops per training step of the engine in eager mode (``(ops(base + extra) - ops(base)) / extra``).

    Returns ``ops_per_step``, ``by_op`` (per step, every op) and ``top_ops`` (the ten most frequent).
    """
    short = _ops_of_run(spec, recipe, data, base, device)
    long = _ops_of_run(spec, recipe, data, base + extra, device)
    per_op = {k: (v - short.by_op.get(k, 0)) / extra for k, v in long.by_op.items()}
    top = sorted(((k, v) for k, v in per_op.items() if v > 0), key=lambda kv: -kv[1])[:10]
    return {"ops_per_step": (long.total - short.total) / extra, "top_ops": dict(top), "mode": "eager",
            "by_op": {k: v for k, v in sorted(per_op.items()) if v},
            "batch_size": recipe.batch_size, "amp": recipe.amp}
