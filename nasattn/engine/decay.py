"""Weight decay: the optimiser's parameter groups and the path weight decay alone would give a parameter.

``param_groups`` puts the parameters named by ``recipe.no_weight_decay`` (``fusion``: the fusion
blocks' own parameters such as the learnable alpha; ``norm``: normalisation layers; ``bias``: every
``bias``) in a group with ``weight_decay: 0``.

``DecayOnly`` follows parameters under a zero loss gradient with the run's optimiser, step by step
at the learning rates the run used: the control for a learned value such as the fusion weight alpha
(does it move more than weight decay alone would move it?). With zero gradient:

- AdamW (decoupled decay): ``p_t = p_{t-1} * (1 - lr_t * wd)``, so ``p_T = p_0 * prod_t (1 - lr_t * wd)``
  (the Adam moments stay 0 and add nothing);
- Adam (L2 decay): the gradient is ``g = wd * p``, fed through Adam's moment estimates and bias correction;
- SGD (L2 decay): ``g = wd * p`` through momentum (dampening 0, optionally Nesterov).

Adam's and SGD's moments use torch's defaults (betas 0.9/0.999, eps 1e-8), as the engine's optimisers do.
Steps that fp16's GradScaler skips (non-finite gradients) are counted as taken.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable, Mapping
from typing import Any

from torch import nn

from nasattn.recipe import Recipe
from nasattn.registry import list_blocks

NORM_LAYERS: tuple[type[nn.Module], ...] = (
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LazyBatchNorm1d, nn.LazyBatchNorm2d, nn.LazyBatchNorm3d,
    nn.SyncBatchNorm, nn.GroupNorm, nn.LayerNorm, nn.RMSNorm,
    nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d,
)
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


def fusion_layers() -> tuple[type[nn.Module], ...]:
    """The module classes registered as ``fusion`` blocks (built-in and user-registered)."""
    return tuple(b.factory for b in list_blocks("fusion") if inspect.isclass(b.factory))


def no_decay_parameters(model: nn.Module, kinds: Iterable[str]) -> dict[str, nn.Parameter]:
    """The trainable parameters of ``model`` that ``kinds`` (``fusion``, ``norm``, ``bias``) exclude from decay.

    ``fusion`` and ``norm`` take a module's own parameters (not those of its children, so a fusion
    block's attention branches keep their decay).
    """
    kinds = set(kinds)
    owners: tuple[type[nn.Module], ...] = ()
    if "fusion" in kinds:
        owners += fusion_layers()
    if "norm" in kinds:
        owners += NORM_LAYERS
    out: dict[str, nn.Parameter] = {}
    for mod_name, module in model.named_modules():
        own = isinstance(module, owners) if owners else False
        for p_name, p in module.named_parameters(recurse=False):
            if p.requires_grad and (own or ("bias" in kinds and p_name == "bias")):
                out[f"{mod_name}.{p_name}" if mod_name else p_name] = p
    return out


def param_groups(model: nn.Module, recipe: Recipe) -> list[dict[str, Any]]:
    """Optimiser parameter groups: the rest with the recipe's decay, ``no_weight_decay``'s with decay 0."""
    params = [p for p in model.parameters() if p.requires_grad]
    excluded = {id(p) for p in no_decay_parameters(model, recipe.no_weight_decay).values()}
    if not excluded:
        return [{"params": params}]
    groups = [
        {"params": [p for p in params if id(p) not in excluded]},
        {"params": [p for p in params if id(p) in excluded], "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


class DecayOnly:
    """Raw values of scalar parameters moved by weight decay alone (zero loss gradient).

    ``values`` are the initial raw values by name, ``weight_decay`` each one's decay (its optimiser
    group's); ``step(lr)`` applies one optimiser step of ``optimizer`` (``adamw``, ``adam``, ``sgd``).
    """

    def __init__(self, optimizer: str, values: Mapping[str, float], weight_decay: Mapping[str, float], *,
                 momentum: float = 0.0, nesterov: bool = False) -> None:
        if optimizer not in ("adamw", "adam", "sgd"):
            raise ValueError(f"optimizer {optimizer!r}: allowed: adamw, adam, sgd")
        self.optimizer, self.momentum, self.nesterov = optimizer, momentum, nesterov and momentum > 0
        self.values = {k: float(v) for k, v in values.items()}
        self.initial = dict(self.values)
        self.weight_decay = {k: float(weight_decay[k]) for k in self.values}
        self.steps = 0
        self.moments: dict[str, list[float]] = {k: [0.0, 0.0] for k in self.values}  # Adam m, v; SGD buffer

    @classmethod
    def for_recipe(cls, recipe: Recipe, values: Mapping[str, float], weight_decay: Mapping[str, float]) -> DecayOnly:
        return cls(recipe.optimizer, values, weight_decay, momentum=recipe.momentum, nesterov=recipe.nesterov)

    def step(self, lr: float) -> None:
        self.steps += 1
        t = self.steps
        b1, b2 = ADAM_BETAS
        for k, p in self.values.items():
            wd, mom = self.weight_decay[k], self.moments[k]
            if self.optimizer == "adamw":
                p *= 1.0 - lr * wd
            elif self.optimizer == "adam":
                g = wd * p
                mom[0] = b1 * mom[0] + (1 - b1) * g
                mom[1] = b2 * mom[1] + (1 - b2) * g * g
                denom = math.sqrt(mom[1]) / math.sqrt(1 - b2**t) + ADAM_EPS
                p -= lr / (1 - b1**t) * mom[0] / denom
            else:
                g = wd * p
                if self.momentum:
                    mom[0] = g if t == 1 else self.momentum * mom[0] + g
                    g = g + self.momentum * mom[0] if self.nesterov else mom[0]
                p -= lr * g
            self.values[k] = p

    def sigmoid(self) -> dict[str, float]:
        """``sigmoid`` of every value (the fusion weight ``s`` of a raw alpha)."""
        return {k: 1.0 / (1.0 + math.exp(-v)) for k, v in self.values.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"initial": dict(self.initial), "values": dict(self.values), "steps": self.steps,
                "moments": {k: list(v) for k, v in self.moments.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.values = {k: float(v) for k, v in state["values"].items()}
        self.initial = {k: float(v) for k, v in state.get("initial", self.initial).items()}
        self.steps = int(state["steps"])
        self.moments = {k: [float(x) for x in v] for k, v in state["moments"].items()}
