"""``build_model(spec)``: turns an ArchSpec into an ``nn.Module`` by instantiating registered blocks."""

from __future__ import annotations

import torch
from torch import nn

from nasattn.blocks.dropblock import ScheduledDropBlock, ramp_factor
from nasattn.blocks.fusion import LearnableAlpha
from nasattn.registry import create_block
from nasattn.spec import ArchSpec, AttentionSpec, StageSpec


def _attention(spec: AttentionSpec, channels: int) -> nn.Module:
    return create_block("attention", spec.type, channels, **spec.params)


def _stage(spec: StageSpec, in_channels: int, drop_prob: float, block_size: int) -> nn.Sequential:
    blocks: list[nn.Module] = []
    for i in range(spec.depth):
        stride = 2 if (i == 0 and spec.downsample == "stride") else 1
        blocks.append(
            create_block(
                "conv", spec.block, in_channels if i == 0 else spec.width, spec.width,
                stride=stride, attention=_attention(spec.attention, spec.width),
                drop_prob=drop_prob, block_size=block_size, **spec.block_params,
            )
        )
    if spec.downsample == "maxpool":
        blocks.append(nn.MaxPool2d(2, 2))
    return nn.Sequential(*blocks)


def _init_paper(model: nn.Module) -> None:
    """The paper author's initialisation: Kaiming (fan_out) convs, N(0, 0.01) linears, BN 1/0.

    A block whose layers stand for the author's linear layers (SE's 1x1 convs) has an ``init_paper()``
    method, called after the generic pass.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    for m in model.modules():
        hook = getattr(m, "init_paper", None)
        if callable(hook) and m is not model:
            hook()


class NasNet(nn.Module):
    """stem -> stages -> head, built from an ArchSpec (kept as ``.spec``)."""

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        self.spec = spec
        channels = spec.in_channels
        if spec.stem is not None:
            self.stem = create_block("stem", spec.stem.type, channels, spec.stem.width, **spec.stem.params)
            channels = spec.stem.width if spec.stem.type != "none" else channels
        else:
            self.stem = nn.Identity()
        probs = spec.stage_drop_probs()
        stages = []
        for stage_spec, p in zip(spec.stages, probs):
            stages.append(_stage(stage_spec, channels, p, spec.dropblock.block_size))
            channels = stage_spec.width
        self.stages = nn.Sequential(*stages)
        # Infer the head's input shape in eval mode: no BatchNorm statistics are touched, and a
        # 1x1 feature map with a batch of one is legal (in training mode BatchNorm rejects it).
        body = nn.Sequential(self.stem, self.stages).eval()
        with torch.no_grad():
            dummy = torch.zeros(1, spec.in_channels, spec.input_size, spec.input_size)
            shape = tuple(body(dummy).shape[1:])
        body.train()
        self.head = create_block("head", spec.head.type, channels, spec.num_classes, in_shape=shape, **spec.head.params)
        if spec.init == "paper":
            _init_paper(self)
        for m in self.modules():
            if isinstance(m, ScheduledDropBlock):
                m.set_law(spec.dropblock.law)
        self.set_epoch(1)

    def set_epoch(self, epoch: int) -> None:
        """Apply the DropBlock ramp for 1-based ``epoch``."""
        factor = ramp_factor(epoch, self.spec.dropblock.ramp_epochs)
        for m in self.modules():
            if isinstance(m, ScheduledDropBlock):
                m.set_ramp(factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


def build_model(spec: ArchSpec) -> NasNet:
    """Build the network described by ``spec`` (weights drawn from torch's global RNG)."""
    return NasNet(spec)


def fusion_alphas(model: nn.Module) -> dict[str, float]:
    """s = sigmoid(a) of every learnable-alpha fusion block, by module name."""
    return {name: m.weight for name, m in model.named_modules() if isinstance(m, LearnableAlpha)}
