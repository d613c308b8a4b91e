"""Define-by-run sampling: an Optuna trial -> an ArchSpec and recipe overrides, constraints checked."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nasattn.config import ConfigError
from nasattn.search.space.dims import Choice, Dim, Fixed, FloatRange, IntRange, Options, Progression, Rejected, Tree
from nasattn.search.space.model import PAPER_CLASS_WEIGHTS, paper_class_weights, SearchSpace
from nasattn.spec import ArchSpec

if TYPE_CHECKING:
    from optuna.trial import BaseTrial

    from nasattn.spec import ArchSpec


class _Sampler:
    """Walks the space, asking ``trial`` (an Optuna trial, FixedTrial or a recorder) for each dim."""

    def __init__(self, trial: Any) -> None:
        self.trial = trial

    def value(self, dim: Dim, name: str) -> Any:
        t = self.trial
        if isinstance(dim, Fixed):
            return dim.value
        if isinstance(dim, Choice):
            return dim.values[0] if len(dim.values) == 1 else t.suggest_categorical(name, list(dim.values))
        if isinstance(dim, IntRange):
            if dim.lo == dim.hi:
                return dim.lo
            return t.suggest_int(name, dim.lo, dim.hi, step=dim.step, log=dim.log)
        if isinstance(dim, FloatRange):
            if dim.lo == dim.hi:
                return dim.lo
            return t.suggest_float(name, dim.lo, dim.hi, step=dim.step, log=dim.log)
        if isinstance(dim, Options):
            names = list(dim.options)
            chosen = names[0] if len(names) == 1 else t.suggest_categorical(name, names)
            params = {k: self.value(d, f"{name}.{chosen}.{k}") for k, d in dim.options[chosen].items()}
            return {"type": chosen, **params}
        if isinstance(dim, Tree):
            return {k: self.value(d, f"{name}.{k}") for k, d in dim.items.items()}
        raise TypeError(f"not a dim: {dim!r}")


def _attention_dict(comp: dict[str, Any]) -> dict[str, Any]:
    if comp["type"] != "fusion":
        return comp
    out: dict[str, Any] = {"type": "fusion"}
    strategy = comp.get("strategy")
    if strategy is not None:
        out["strategy"] = strategy["type"]
        out.update({k: v for k, v in strategy.items() if k != "type"})
    for branch in ("spatial", "channel"):
        if comp.get(branch) is not None:
            out[branch] = comp[branch]
    return out


def build_arch_dict(space: SearchSpace, trial: Any) -> dict[str, Any]:
    """The ArchSpec dict of the point ``trial`` chooses (no validation)."""
    s = _Sampler(trial)
    st, per = space.stages, set(space.stages.per_stage)
    stem = s.value(space.stem, "stem")
    count = int(s.value(st.count, "stages.count"))

    def shared_or_stage(key: str, dim: Dim, i: int) -> Any:
        return s.value(dim, f"stage{i + 1}.{key}") if key in per else s.value(dim, f"stages.{key}")

    widths: list[int]
    if isinstance(st.width, Progression):
        base = s.value(st.width.base, "stages.width.base")
        growth = s.value(st.width.growth, "stages.width.growth")
        cap = s.value(st.width.max, "stages.width.max")
        widths = [int(min(round(base * growth**i), cap)) for i in range(count)]
    else:
        widths = [int(shared_or_stage("width", st.width, i)) for i in range(count)]
    ds_first = True if "downsample" in per else bool(s.value(st.downsample_first, "stages.downsample_first"))
    mode = s.value(space.attention.mode, "attention.mode")
    shared_att = None
    if mode in ("same", "skip_first"):
        shared_att = _attention_dict(s.value(space.attention.type, "attention"))
    stages = []
    for i in range(count):
        block = shared_or_stage("block", st.block, i)
        depth = int(shared_or_stage("depth", st.depth, i))
        ds = shared_or_stage("downsample", st.downsample, i)
        if i == 0 and not ds_first:
            ds = "none"
        if mode == "per_stage":
            att = _attention_dict(s.value(space.attention.type, f"stage{i + 1}.attention"))
        elif mode == "skip_first" and i == 0:
            att = {"type": "none"}
        else:
            att = shared_att
        stage: dict[str, Any] = {"block": block["type"], "depth": depth, "width": widths[i], "downsample": ds,
                                 "attention": dict(att)}
        params = {k: v for k, v in block.items() if k != "type"}
        if params:
            stage["block_params"] = params
        stages.append(stage)
    head = s.value(space.head, "head")
    db = s.value(space.dropblock, "dropblock")
    db = {"schedule": db.pop("type"), **db}
    arch: dict[str, Any] = {
        "name": None, "in_channels": space.in_channels, "num_classes": space.num_classes,
        "input_size": space.input_size,
        "stem": None if stem["type"] == "none" else stem,
        "stages": stages, "head": head, "dropblock": db, "init": space.init,
    }
    return arch


def sample_recipe(space: SearchSpace, trial: BaseTrial) -> dict[str, Any]:
    """Recipe overrides chosen by ``trial`` (``recipe.<field>`` parameters).

    ``class_weights: paper`` becomes the paper's weights list. A seed trial of a preset whose own
    recipe the space carries (``own_recipes``, from a study's ``seeds.recipe: own``) gets that recipe
    on top of the sampled values (its epochs stay the study's).
    """

    s = _Sampler(trial)
    out: dict[str, Any] = {}
    for key, dim in space.recipe.items.items():
        if isinstance(dim, Options):
            names = list(dim.options)
            chosen = names[0] if len(names) == 1 else trial.suggest_categorical(f"recipe.{key}", names)
            out[key] = chosen
            for pk, pd in dim.options[chosen].items():
                out[pk] = s.value(pd, f"recipe.{key}.{chosen}.{pk}")
        else:
            out[key] = s.value(dim, f"recipe.{key}")
    if out.get("class_weights") == PAPER_CLASS_WEIGHTS:
        out["class_weights"] = paper_class_weights()
    seed_point = (getattr(trial, "user_attrs", None) or {}).get("seed_point")
    own = space.own_recipes.get(seed_point) if seed_point else None
    if own:
        out.update({k: v for k, v in own.items() if k != "epochs"})
    return out


def check_constraints(space: SearchSpace, spec: ArchSpec) -> None:
    """Raise :class:`Rejected` when ``spec`` violates one of the space's constraints."""
    active = space.constraints.active()
    if not active:
        return
    values: dict[str, float] = {}
    if "stages" in active:
        values["stages"] = len(spec.stages)
    if "layers" in active:
        values["layers"] = spec.layers
    if "conv_layers" in active:
        values["conv_layers"] = spec.conv_layers
    if "params" in active or "flops" in active:
        from nasattn.models import build_model, profile_model  # lazy: keeps torch out of plans, presets and the CLI's start

        prof = profile_model(build_model(spec))
        values["params"], values["flops"] = prof["params"], prof["flops"]
    for key, (lo, hi) in active.items():
        v = values[key]
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise Rejected(f"constraint {key} in [{lo}, {hi}] violated: {key} = {v:g}")


def sample_spec(trial: BaseTrial, space: SearchSpace) -> tuple[ArchSpec, dict[str, Any]]:
    """Define-by-run: sample an ArchSpec and recipe overrides with ``trial.suggest_*``.

    Raises :class:`Rejected` (with the reason) when the point violates a constraint or is not a
    valid architecture (for example more downsampling stages than the input size allows).
    """

    arch = build_arch_dict(space, trial)
    recipe = sample_recipe(space, trial)
    try:
        spec = ArchSpec.from_dict(arch, "sampled architecture")
    except ConfigError as e:
        raise Rejected(str(e).replace("sampled architecture: ", "invalid architecture: ", 1)) from None
    check_constraints(space, spec)
    return spec, recipe
