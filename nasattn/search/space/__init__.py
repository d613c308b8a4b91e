"""Search spaces: a declarative YAML language over the block registry, sampled define-by-run with Optuna.

A *dimension* (dim) is written as one of::

    16                                  # a fixed value (any scalar, list or mapping)
    {choice: [8, 16, 32]}               # categorical (scalars only)
    {int: [1, 4]}                       # integer range, inclusive; optional step: 2, log: true
    {float: [1.0e-4, 1.0e-2], log: true}  # float range; optional step: 0.05 (not with log)
    {options: {se: {reduction: {choice: [8, 16]}}, cbam: {}, none: null}}
                                        # a registered block chosen by name; its parameters (dims
                                        # themselves) exist only when that block is chosen: conditional
    {options: [none, se, cbam]}         # the same with every parameter at its default
    {type: se, reduction: {choice: [8, 16]}}   # one block, with dims as parameters

Where a block is expected (``stem``, ``stages.block``, ``attention.type``, ``head``, ``dropblock``
and, inside a fusion attention, ``strategy``, ``spatial`` and ``channel``) a plain name is a fixed
block and ``{choice: [...]}`` of names means ``options`` with default parameters.

Structure (every key optional; defaults in brackets)::

    name: eurosat
    input_size: 64                # [64] num_classes [10], in_channels [3], init [paper]
    stem: {options: {none: null, conv: {width: {choice: [32, 64]}}}}           # [none]
    stages:
      count: {int: [3, 6]}        # number of stages [3]
      block: {options: {plain: {conv_bias: {choice: [true, false]}}, double: ..., residual: ...}}
      depth: {int: [1, 3]}        # blocks per stage [1]
      width: {base: {choice: [16, 32, 64]}, growth: 2, max: {choice: [256, 512]}}
                                  # stage i (0-based) has min(base * growth**i, max) channels;
                                  # or a plain dim (one width for all, or per stage)
      downsample: {choice: [maxpool, stride]}   # how stages halve the resolution [maxpool]
      downsample_first: {choice: [true, false]} # does the first stage downsample too [true]
      per_stage: [depth]          # which of block, depth, width, downsample are drawn per stage
    attention:
      mode: {choice: [same, skip_first, per_stage]}
                                  # same: one attention in every stage; skip_first: none in the
                                  # first stage, one attention in the others; per_stage: one each
      type: {options: {none: null, se: ..., cbam: ..., coord: ..., fusion: {strategy: ..., spatial: ..., channel: ...}}}
    head: {options: {gap_linear: {dropout: {float: [0.0, 0.5], step: 0.1}}, gap_mlp: ..., flatten_mlp: ...}}
    dropblock: {options: {none: null, progressive: {p_min: 0.05, p_max: {float: [0.1, 0.3]}, block_size: {choice: [3, 5, 7]}}}}
    recipe:                        # Recipe fields: dims, or options whose parameters are Recipe fields
      lr: {float: [1.0e-4, 3.0e-3], log: true}
      optimizer: {options: {adamw: null, sgd: {momentum: {float: [0.8, 0.95]}}}}
    constraints:                   # sampled architectures outside these are rejected (resampled)
      conv_layers: [3, 30]         # [min, max]; null for no bound. Also layers, params, flops, stages
    points: {name: {param: value}} # optional named points (Optuna parameter dicts) to enqueue

Optuna parameter names are dotted paths: ``stages.count``, ``stage2.depth`` (1-based, per stage),
``attention`` (the chosen block), ``attention.se.reduction`` (its parameter), ``stage3.attention``
(per-stage mode), ``head.gap_linear.dropout``, ``dropblock.progressive.p_max``, ``recipe.lr``.

Constraints: ``sample_spec`` raises :class:`Rejected` for an architecture that violates one (or that
ArchSpec itself rejects, such as too many downsampling stages for the input); the search records
the sample as a pruned Optuna trial with the reason and draws again (see ``nasattn.search.searcher``).
"""

from __future__ import annotations

from nasattn.search.space.dims import NotInSpace, Rejected
from nasattn.search.space.model import SearchSpace, load_space
from nasattn.search.space.points import arch_point, canonical_arch, preset_points, space_contains
from nasattn.search.space.sample import build_arch_dict, check_constraints, sample_recipe, sample_spec
from nasattn.search.space.walk import DimInfo, describe_dim, grid_values, iter_dims, space_size

__all__ = [
    "arch_point", "build_arch_dict", "canonical_arch", "check_constraints", "describe_dim", "DimInfo", "grid_values",
    "iter_dims", "load_space", "NotInSpace", "preset_points", "Rejected", "sample_recipe", "sample_spec", "SearchSpace",
    "space_contains", "space_size",
]
