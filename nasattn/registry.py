"""Block registry in the spirit of timm's ``create_attn``: blocks are registered by kind and name.

Users extend nasattn the same way as the built-ins::

    from nasattn.registry import register_block

    @register_block("attention", "eca")
    class ECA(nn.Module):
        def __init__(self, channels: int, kernel_size: int = 3): ...

After that ``attention: {type: eca, kernel_size: 5}`` is valid in any ArchSpec, search space or
ablation file.  Constructor signatures are the block's parameters: the leading positional
arguments (``channels`` for attention, ``in_channels, out_channels`` for conv blocks...) are
supplied by the builder, every keyword argument with a default is user-settable.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

from nasattn.config import NasattnError

KINDS: dict[str, str] = {
    "stem": "first convolution(s) applied to the input image",
    "conv": "a block of a stage: called with (in_channels, out_channels, stride=..., attention=..., drop_prob=..., block_size=...)",
    "attention": "called with (channels, **params); returns a module mapping x -> x' of the same shape",
    "fusion": "combines a spatial and a channel attention branch: (channels, spatial, channel, **params)",
    "head": "classifier: (in_channels, num_classes, **params)",
    "dropblock": "DropBlock schedule: gives the drop probability of each stage and epoch",
    "dropblock_law": "how DropBlock draws its mask in training: called with (x, p, block_size), returns x masked",
}

# Positional arguments the builder supplies, per kind; they are not user parameters.
_BUILDER_ARGS: dict[str, tuple[str, ...]] = {
    "stem": ("in_channels", "out_channels"),
    "conv": ("in_channels", "out_channels", "stride", "attention", "drop_prob", "block_size"),
    "attention": ("channels",),
    "fusion": ("channels", "spatial", "channel"),
    "head": ("in_channels", "num_classes", "in_shape"),
    "dropblock": ("num_stages",),
    "dropblock_law": ("x", "p", "block_size"),
}


class UnknownBlockError(NasattnError, KeyError):
    """Raised for a kind or name that is not registered; the message lists what is allowed."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


@dataclass(frozen=True)
class BlockInfo:
    kind: str
    name: str
    factory: Callable[..., Any]
    params: dict[str, Any] = field(default_factory=dict)  # user parameter -> default
    doc: str = ""


_REGISTRY: dict[str, dict[str, BlockInfo]] = {kind: {} for kind in KINDS}


def _user_params(kind: str, factory: Callable[..., Any]) -> dict[str, Any]:
    target = factory.__init__ if inspect.isclass(factory) else factory
    params: dict[str, Any] = {}
    for name, p in inspect.signature(target).parameters.items():
        if name == "self" or name in _BUILDER_ARGS[kind] or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        params[name] = None if p.default is inspect.Parameter.empty else p.default
    return params


def register_block(kind: str, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Class/function decorator registering a block factory under ``kind``/``name``."""
    if kind not in KINDS:
        raise UnknownBlockError(f"unknown block kind {kind!r}; allowed: {', '.join(KINDS)}")

    def decorator(factory: Callable[..., Any]) -> Callable[..., Any]:
        doc = inspect.getdoc(factory) or ""
        _REGISTRY[kind][name] = BlockInfo(kind, name, factory, _user_params(kind, factory), doc.split("\n")[0])
        return factory

    return decorator


def get_block(kind: str, name: str) -> BlockInfo:
    _ensure_builtins()
    if kind not in _REGISTRY:
        raise UnknownBlockError(f"unknown block kind {kind!r}; allowed: {', '.join(KINDS)}")
    try:
        return _REGISTRY[kind][name]
    except KeyError:
        allowed = ", ".join(sorted(_REGISTRY[kind])) or "(none registered)"
        raise UnknownBlockError(f"unknown {kind} block {name!r}; allowed: {allowed}") from None


def create_block(kind: str, name: str, *args: Any, **params: Any) -> Any:
    """Instantiate a registered block: builder arguments positionally, user parameters by keyword."""
    return get_block(kind, name).factory(*args, **params)


def block_names(kind: str) -> list[str]:
    _ensure_builtins()
    return sorted(_REGISTRY[kind])


def list_blocks(kind: str | None = None) -> list[BlockInfo]:
    _ensure_builtins()
    kinds = [kind] if kind else list(KINDS)
    return [_REGISTRY[k][n] for k in kinds for n in sorted(_REGISTRY[k])]


def _ensure_builtins() -> None:
    import nasattn.blocks  # noqa: F401  (registers the built-in blocks on import)
