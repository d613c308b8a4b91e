"""Public seams: SE against torchvision's module, the CPU bf16 check, a DropBlock law given as a callable."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import SqueezeExcitation, drop_block2d

from nasattn.blocks.dropblock import ScheduledDropBlock
from nasattn.blocks.se_torchvision import SE
from nasattn.engine import trainer


@pytest.mark.parametrize("bias", [True, False])
def test_se_equals_torchvisions_squeeze_excitation_on_the_same_weights(bias):
    torch.manual_seed(0)
    ours = SE(32, reduction=8, bias=bias)
    for p in ours.parameters():
        torch.nn.init.normal_(p, 0, 0.5)
    reference = SqueezeExcitation(32, 4)
    state = ours.state_dict()
    if not bias:  # torchvision's layers always have a bias: a zero one is the bias-free SE
        state = {**state, "fc1.bias": torch.zeros(4), "fc2.bias": torch.zeros(32)}
    reference.load_state_dict(state)
    x = torch.randn(3, 32, 7, 5)
    torch.testing.assert_close(ours(x), reference(x))
    assert set(ours.state_dict()) <= set(reference.state_dict())  # same keys: old checkpoints load


@pytest.mark.parametrize("capability, flags, expected", [
    ("AVX512", "fpu avx512f avx512_bf16", True),
    ("AVX512", "fpu avx512f amx_bf16 amx_tile", True),
    ("AVX512", "fpu avx512f", False),
    ("AVX2", "fpu avx2 avx512_bf16", False),  # torch does not dispatch AVX512 kernels here
])
def test_cpu_bf16_check_reads_the_public_capability_and_the_cpu_flags(monkeypatch, capability, flags, expected):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    cpuinfo = f"processor\t: 0\nflags\t\t: {flags}\n"
    assert trainer.cpu_has_native_bf16(cpuinfo) is expected


def test_a_dropblock_law_given_as_a_callable_draws_the_mask():
    from nasattn.bench.profile import torchvision_ops_law

    block = ScheduledDropBlock(0.3, block_size=7).train()
    block.set_law(torchvision_ops_law)
    x = torch.randn(2, 4, 5, 5)
    torch.manual_seed(1)
    got = block(x)
    torch.manual_seed(1)
    want = drop_block2d(x, 0.3, 5, False, 1e-6, True)  # the block clamped to the 5x5 map
    torch.testing.assert_close(got, want)
    assert block.law == "torchvision_ops_law"
