"""The ``none`` attention: identity."""

from torch import nn

from nasattn.registry import register_block


@register_block("attention", "none")
class Identity(nn.Identity):
    """No attention (identity)."""

    def __init__(self, channels: int = 0) -> None:
        super().__init__()
