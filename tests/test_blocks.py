"""Every registered block: output shape, gradient flow, registry behaviour, user-registered blocks."""

import math

import pytest
import torch
from torch import nn

from nasattn.blocks.dropblock import ScheduledDropBlock, ramp_factor
from nasattn.blocks.fusion import LearnableAlpha
from nasattn.models import build_model, fusion_alphas
from nasattn.registry import UnknownBlockError, block_names, create_block, list_blocks, register_block
from nasattn.spec import ArchSpec

ATTENTIONS = ["none", "se", "cbam", "coord", "spatial_gate", "fusion"]
FUSIONS = ["learnable_alpha", "fixed_alpha", "gate", "sum", "concat", "sequential_sc", "sequential_cs"]


def _grad_ok(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    y = module(x)
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for name, p in module.named_parameters():
        assert p.grad is not None, f"no gradient reached {name}"
    return y


def test_builtin_kinds_are_registered():
    assert set(ATTENTIONS) <= set(block_names("attention"))
    assert set(FUSIONS) == set(block_names("fusion"))
    assert {"plain", "double", "residual"} <= set(block_names("conv"))
    assert {"flatten_mlp", "gap_mlp", "gap_linear"} <= set(block_names("head"))
    assert {"none", "constant", "progressive"} <= set(block_names("dropblock"))
    assert all(b.doc for b in list_blocks()), "every block documents itself in one line"


@pytest.mark.parametrize("name", ATTENTIONS)
def test_attention_shape_and_gradient(name):
    torch.manual_seed(0)
    block = create_block("attention", name, 32)
    x = torch.randn(4, 32, 8, 6)  # non-square on purpose (coordinate attention splits H and W)
    y = block(x) if name == "none" else _grad_ok(block, x)
    assert y.shape == x.shape


@pytest.mark.parametrize("strategy", FUSIONS)
def test_fusion_strategies(strategy):
    torch.manual_seed(0)
    block = create_block("attention", "fusion", 16, strategy=strategy)
    x = torch.randn(2, 16, 8, 8)
    y = _grad_ok(block, x)
    assert y.shape == x.shape


def test_learnable_alpha_formula_and_readout():
    torch.manual_seed(0)
    sp, ch = create_block("attention", "coord", 8), create_block("attention", "se", 8)
    block = LearnableAlpha(8, sp, ch, init=0.3)
    x = torch.randn(2, 8, 5, 5)
    s = torch.sigmoid(torch.tensor(0.3))
    torch.testing.assert_close(block(x), s * sp(x) + (1 - s) * ch(x))
    assert block.weight == pytest.approx(float(s))


def test_fixed_alpha_and_sequential_compose_branches():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 4, 4)
    fixed = create_block("attention", "fusion", 8, strategy="fixed_alpha", alpha=0.25)
    torch.testing.assert_close(fixed(x), 0.25 * fixed.spatial(x) + 0.75 * fixed.channel(x))
    sc = create_block("attention", "fusion", 8, strategy="sequential_sc")
    torch.testing.assert_close(sc(x), sc.channel(sc.spatial(x)))
    cs = create_block("attention", "fusion", 8, strategy="sequential_cs")
    torch.testing.assert_close(cs(x), cs.spatial(cs.channel(x)))
    with pytest.raises(ValueError, match="alpha must be in"):
        create_block("attention", "fusion", 8, strategy="fixed_alpha", alpha=1.5)


def test_any_spatial_and_channel_branch_can_be_fused():
    block = create_block("attention", "fusion", 16, strategy="sum", spatial={"type": "spatial_gate"}, channel={"type": "cbam"})
    assert block(torch.randn(2, 16, 8, 8)).shape == (2, 16, 8, 8)


def test_se_has_torchvision_squeeze_excitation_layout():
    from nasattn.blocks.se_torchvision import SE

    se = create_block("attention", "se", 64, reduction=16)
    assert isinstance(se, SE) and se.fc1.out_channels == 4
    assert create_block("attention", "se", 64, bias=False).fc1.bias is None


@pytest.mark.parametrize("block", ["plain", "double", "residual"])
@pytest.mark.parametrize("stride", [1, 2])
def test_conv_blocks(block, stride):
    torch.manual_seed(0)
    att = create_block("attention", "se", 16)
    m = create_block("conv", block, 8, 16, stride=stride, attention=att, drop_prob=0.1, block_size=3)
    y = _grad_ok(m, torch.randn(2, 8, 16, 16))
    assert y.shape == (2, 16, 16 // stride, 16 // stride)


def test_residual_projection_only_when_shape_changes():
    same = create_block("conv", "residual", 16, 16, stride=1)
    assert isinstance(same.shortcut, nn.Identity)
    proj = create_block("conv", "residual", 8, 16, stride=2)
    assert isinstance(proj.shortcut[0], nn.Conv2d) and proj.shortcut[0].kernel_size == (1, 1)


@pytest.mark.parametrize("head", ["flatten_mlp", "gap_mlp", "gap_linear"])
def test_heads(head):
    m = create_block("head", head, 16, 10, in_shape=(16, 4, 4))
    y = _grad_ok(m, torch.randn(3, 16, 4, 4))
    assert y.shape == (3, 10)
    assert any(isinstance(x, nn.Dropout) for x in m.modules())


def test_dropblock_schedules_per_stage():
    spec = ArchSpec.from_dict({"stages": [{"width": 8}] * 4, "dropblock": {"schedule": "progressive", "p_min": 0.05, "p_max": 0.2}})
    assert spec.stage_drop_probs() == pytest.approx([0.05, 0.10, 0.15, 0.20])
    spec = ArchSpec.from_dict({"stages": [{"width": 8}] * 3, "dropblock": {"schedule": "constant", "p": 0.1}})
    assert spec.stage_drop_probs() == pytest.approx([0.1, 0.1, 0.1])
    spec = ArchSpec.from_dict({"stages": [{"width": 8}] * 2})
    assert spec.stage_drop_probs() == [0.0, 0.0]


def test_dropblock_ramp_over_epochs():
    assert [ramp_factor(e, 4) for e in (1, 2, 3, 5, 9)] == [0.0, 0.25, 0.5, 1.0, 1.0]
    assert ramp_factor(1, 0) == 1.0
    spec = ArchSpec.from_dict({
        "stages": [{"width": 8, "depth": 1}, {"width": 8, "depth": 1, "downsample": "stride"}],
        "dropblock": {"schedule": "progressive", "p_min": 0.1, "p_max": 0.3, "block_size": 3, "ramp_epochs": 4},
    })
    model = build_model(spec)
    drops = [m for m in model.modules() if isinstance(m, ScheduledDropBlock)]
    assert [d.target_p for d in drops] == pytest.approx([0.1, 0.3])
    assert all(d.p == 0.0 for d in drops)  # epoch 1 of a ramp
    model.set_epoch(3)
    assert [d.p for d in drops] == pytest.approx([0.05, 0.15])
    model.set_epoch(10)
    assert [d.p for d in drops] == pytest.approx([0.1, 0.3])


def test_dropblock_is_identity_in_eval_and_drops_in_training():
    d = ScheduledDropBlock(0.5, 3)
    x = torch.ones(2, 4, 8, 8)
    d.eval()
    assert torch.equal(d(x), x)
    d.train()
    torch.manual_seed(0)
    assert (d(x) == 0).any()


@pytest.mark.parametrize("shape,p,block", [((4, 8, 16, 16), 0.1, 7), ((3, 5, 9, 11), 0.3, 5), ((2, 4, 7, 7), 0.9, 7),
                                            ((2, 3, 8, 8), 0.3, 3)])
def test_cpu_dropblock_equals_torchvision_bit_for_bit_given_the_same_seeds(shape, p, block):
    from torchvision.ops import drop_block2d

    from nasattn.blocks.dropblock import drop_block2d_cpu

    x = torch.randn(shape, requires_grad=True)
    torch.manual_seed(1)
    ref = drop_block2d(x, p, block)
    n, c, h, w = shape
    gamma = (p * h * w) / ((block**2) * ((h - block + 1) * (w - block + 1)))
    torch.manual_seed(1)  # torchvision's own draw of the seeds
    seeds = torch.empty((n, c, h - block + 1, w - block + 1)).bernoulli_(gamma).nonzero()
    out = drop_block2d_cpu(x, p, block, seeds=seeds)
    assert torch.equal(out, ref) and (out == 0).any()
    g = torch.randn(shape)
    (grad_ref,) = torch.autograd.grad(ref, x, g)
    (grad_out,) = torch.autograd.grad(out, x, g)
    assert torch.equal(grad_out, grad_ref)
    y = x.detach().clone()
    assert drop_block2d_cpu(y, p, block, inplace=True, seeds=seeds) is y and torch.equal(y, ref)


def test_sparse_bernoulli_positions_follow_the_dense_law():
    from nasattn.blocks.dropblock import bernoulli_positions

    torch.manual_seed(0)
    shape, prob, draws = (4, 8, 16, 16), 0.01, 400
    counts = torch.zeros(shape)
    sizes = []
    for _ in range(draws):
        pos = bernoulli_positions(shape, prob)
        assert pos.shape[1] == 4 and len(pos.unique(dim=0)) == len(pos)  # distinct, in-bounds indices
        assert ((pos >= 0) & (pos < torch.tensor(shape))).all()
        counts[tuple(pos.T)] += 1
        sizes.append(len(pos))
    n = counts.numel()
    sizes = torch.tensor(sizes, dtype=torch.float64)
    # Binomial(n, prob) count per draw: mean within 5 standard errors, variance within 30%
    assert abs(sizes.mean() - n * prob) < 5 * math.sqrt(n * prob * (1 - prob) / draws)
    assert sizes.var() == pytest.approx(n * prob * (1 - prob), rel=0.3)
    # every position equally likely: per-axis marginals flat (chi-square, far tail at 6 sd)
    for axis in range(4):
        per = counts.sum(dim=[d for d in range(4) if d != axis])
        expected = per.sum() / len(per)
        chi2 = float(((per - expected) ** 2 / expected).sum())
        dof = len(per) - 1
        assert chi2 < dof + 6 * math.sqrt(2 * dof)
    assert bernoulli_positions((2, 3), 1.0).tolist() == [[i, j] for i in range(2) for j in range(3)]


def test_cpu_dropblock_drops_the_expected_fraction():
    from nasattn.blocks.dropblock import drop_block2d_cpu

    torch.manual_seed(0)
    x = torch.ones(16, 8, 32, 32)
    dropped = [float((drop_block2d_cpu(x, 0.1, 5) == 0).float().mean()) for _ in range(20)]
    # torchvision's gamma targets p on average; overlapping blocks make it a little less
    assert 0.07 < sum(dropped) / len(dropped) < 0.11


@pytest.mark.parametrize("dims", [(2, 3), (3,), (2,)])
def test_mean_pool_is_mean_with_a_gradient_in_the_input_layout(dims):
    from nasattn.blocks.pooling import mean_pool

    x = torch.randn(2, 3, 5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.equal(mean_pool(x, dims), x.mean(dim=dims, keepdim=True))
    assert torch.autograd.gradcheck(lambda t: mean_pool(t, dims), (x,))
    xl = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    g = torch.randn_like(mean_pool(xl, dims))
    (grad,) = torch.autograd.grad(mean_pool(xl, dims), xl, g)
    (ref,) = torch.autograd.grad(x.mean(dim=dims, keepdim=True), x, g)
    assert grad.is_contiguous(memory_format=torch.channels_last) and torch.allclose(grad, ref)


@pytest.mark.parametrize("kind", ["coord", "se", "cbam", "fusion"])
def test_attention_is_the_same_in_channels_last(kind):
    torch.manual_seed(0)
    block = create_block("attention", kind, 16).double()
    x = torch.randn(4, 16, 8, 8, dtype=torch.float64, requires_grad=True)
    xl = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    y, yl = block(x), block.to(memory_format=torch.channels_last)(xl)
    g = torch.randn_like(y)
    assert torch.allclose(y, yl)
    assert torch.allclose(torch.autograd.grad(y, x, g)[0], torch.autograd.grad(yl, xl, g)[0])


def test_unknown_block_lists_allowed():
    with pytest.raises(UnknownBlockError, match="allowed: .*cbam.*coord"):
        create_block("attention", "nope", 8)


def test_user_registered_block_end_to_end():
    @register_block("attention", "test_eca")
    class ECA(nn.Module):
        """Efficient channel attention (a user block defined in a test)."""

        def __init__(self, channels: int, kernel_size: int = 3) -> None:
            super().__init__()
            self.conv = nn.Conv1d(1, 1, kernel_size, padding=kernel_size // 2, bias=False)

        def forward(self, x):
            w = self.conv(x.mean((2, 3))[:, None, :]).sigmoid()
            return x * w[:, 0, :, None, None]

    info = [b for b in list_blocks("attention") if b.name == "test_eca"][0]
    assert info.params == {"kernel_size": 3}
    spec = ArchSpec.from_dict({
        "stem": {"type": "conv", "width": 8},
        "stages": [{"block": "residual", "width": 8, "attention": {"type": "test_eca", "kernel_size": 5}},
                   {"block": "residual", "width": 16, "downsample": "stride",
                    "attention": {"type": "fusion", "strategy": "sum", "channel": {"type": "test_eca"}}}],
    })
    model = build_model(spec)
    assert sum(isinstance(m, ECA) for m in model.modules()) == 2
    assert model.stages[0][0].attention.conv.kernel_size == (5,)
    out = model(torch.randn(2, 3, 32, 32))
    out.sum().backward()
    assert out.shape == (2, 10)


def test_fusion_alphas_readout():
    spec = ArchSpec.from_dict({"stages": [{"width": 8, "attention": {"type": "fusion", "init": 0.0}},
                                          {"width": 8, "attention": {"type": "se"}}]})
    alphas = fusion_alphas(build_model(spec))
    assert list(alphas.values()) == [pytest.approx(0.5)]


def test_dropblock_on_a_feature_map_smaller_than_the_block():
    drop = ScheduledDropBlock(0.3, block_size=7).train()
    for hw in (4, 2, 1):  # torchvision would clamp 7 -> 4 (even) and raise
        x = torch.ones(2, 8, hw, hw)
        y = drop(x)
        assert y.shape == x.shape and torch.isfinite(y).all()
