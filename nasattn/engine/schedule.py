"""Learning-rate schedules of a Recipe behind one interface (per-batch and per-epoch stepping)."""

from __future__ import annotations

from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    CosineAnnealingWarmRestarts,
    LinearLR,
    LRScheduler,
    OneCycleLR,
    ReduceLROnPlateau,
    SequentialLR,
)

from nasattn.recipe import Recipe


class LRSchedule:
    """The recipe's schedule built from torch.optim.lr_scheduler.

    ``none``/``cosine``/``warm_restarts`` step once per epoch, with an optional linear warm-up
    (``LinearLR`` from lr/(w+1) to lr over ``warmup_epochs``, chained with ``SequentialLR``; cosine
    then anneals to 0 over the remaining ``epochs - warmup_epochs``). ``plateau`` is
    ``ReduceLROnPlateau`` on val accuracy (mode max), after the warm-up. ``onecycle`` steps per batch
    over ``epochs * steps_per_epoch`` steps (``pct_start`` = warmup_epochs / epochs, or 0.3).
    """

    def __init__(self, optimizer: Optimizer, recipe: Recipe, steps_per_epoch: int) -> None:
        w, epochs = recipe.warmup_epochs, recipe.epochs
        self.warmup_epochs = w
        self.per_batch: LRScheduler | None = None
        self.per_epoch: LRScheduler | None = None
        self.plateau: ReduceLROnPlateau | None = None
        self.warmup: LRScheduler | None = None
        if recipe.schedule == "onecycle":
            pct = min(max(w / epochs, 1e-3), 0.999) if w else 0.3
            self.per_batch = OneCycleLR(
                optimizer, max_lr=recipe.lr, total_steps=max(2, epochs * steps_per_epoch), pct_start=pct
            )
            return
        warm = LinearLR(optimizer, start_factor=1.0 / (w + 1), end_factor=1.0, total_iters=w) if w else None
        if recipe.schedule == "plateau":
            self.warmup = warm
            self.plateau = ReduceLROnPlateau(
                optimizer, mode="max", factor=recipe.plateau_factor, patience=recipe.plateau_patience
            )
            return
        main: LRScheduler | None
        if recipe.schedule == "cosine":
            main = CosineAnnealingLR(optimizer, T_max=max(1, epochs - w), eta_min=0.0)
        elif recipe.schedule == "warm_restarts":
            main = CosineAnnealingWarmRestarts(optimizer, T_0=recipe.t0, T_mult=recipe.t_mult)
        else:  # none
            main = None
        if warm is not None and main is not None:
            self.per_epoch = SequentialLR(optimizer, [warm, main], milestones=[w])
        else:
            self.per_epoch = warm or main

    def step_batch(self) -> None:
        """After each optimiser step."""
        if self.per_batch is not None:
            self.per_batch.step()

    def step_epoch(self, epoch: int, val_accuracy: float) -> None:
        """After epoch ``epoch`` (1-based) has been trained and validated."""
        if self.per_epoch is not None:
            self.per_epoch.step()
        elif self.plateau is not None:
            if self.warmup is not None and epoch <= self.warmup_epochs:
                self.warmup.step()
            else:
                self.plateau.step(val_accuracy)

    def _parts(self) -> dict[str, Any]:
        return {"per_batch": self.per_batch, "per_epoch": self.per_epoch, "plateau": self.plateau, "warmup": self.warmup}

    def state_dict(self) -> dict[str, Any]:
        return {k: s.state_dict() for k, s in self._parts().items() if s is not None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, s in self._parts().items():
            if s is not None and k in state:
                s.load_state_dict(state[k])
