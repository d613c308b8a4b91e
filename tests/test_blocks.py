"""Every registered block: values on known inputs, gradient flow, registry behaviour, user-registered blocks."""

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


# ------------------------------------------------------------------- known inputs, known outputs
# Each attention block is checked on an input whose output is known in closed form (or against an
# independent reference), in eval mode so BatchNorm uses its running statistics (mean 0, variance 1).
def _bn_eval(t: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    """A fresh BatchNorm in eval mode: (t - 0) / sqrt(1 + eps) * weight + bias."""
    return t / math.sqrt(1 + bn.eps) * bn.weight[None, :, None, None] + bn.bias[None, :, None, None]


def _spatial_hot_map(block: nn.Module, conv: nn.Conv2d) -> None:
    """Spatial gate on a map of ones with one hot pixel, kernel 0.1 everywhere and 1 at its centre: it peaks there."""
    k = conv.kernel_size[0]
    with torch.no_grad():
        conv.weight.fill_(0.1)
        conv.weight[:, :, k // 2, k // 2] = 1.0
    x = torch.ones(1, 4, 16, 16)
    x[:, :, 9, 5] = 5.0
    gate = block(x) / x
    assert divmod(int(gate[0, 0].argmax()), 16) == (9, 5)
    # over the channel-mean and channel-max maps (equal here): 2 x (1.0 * 5 + 0.1 * (k*k - 1) ones)
    torch.testing.assert_close(gate[0, :, 9, 5], torch.sigmoid(torch.tensor(2 * (5.0 + 0.1 * (k * k - 1)))).expand(4))
    inside = (k // 2 + 1) ** 2  # a corner: zero padding leaves this many cells of the window on the map
    torch.testing.assert_close(gate[0, :, 0, 15], torch.sigmoid(torch.tensor(2 * (1.0 + 0.1 * (inside - 1)))).expand(4))


def _alive(hidden: nn.Module) -> None:
    """A positive bias on a squeeze layer, so its ReLU passes everything on (a dead ReLU would hide the pooling)."""
    with torch.no_grad():
        hidden.bias.fill_(1.0)


def _check_none(block: nn.Module, x: torch.Tensor) -> None:
    assert torch.equal(block(x), x)


def _check_se(block: nn.Module, x: torch.Tensor) -> None:
    from torchvision.ops import SqueezeExcitation

    _alive(block.fc1)
    ref = SqueezeExcitation(32, block.fc1.out_channels)
    ref.load_state_dict(block.state_dict())
    torch.testing.assert_close(block(x), ref(x))
    const = torch.arange(1.0, 33.0)[None, :, None, None].expand(2, 32, 8, 6) / 32  # channel i: constant (i+1)/32
    w1, b1 = block.fc1.weight[:, :, 0, 0], block.fc1.bias
    w2, b2 = block.fc2.weight[:, :, 0, 0], block.fc2.bias
    c = const[0, :, 0, 0]
    gate = torch.sigmoid(w2 @ torch.relu(w1 @ c + b1) + b2)  # SE's closed form on a constant map
    torch.testing.assert_close(block(const), const * gate[None, :, None, None])


def _check_cbam(block: nn.Module, x: torch.Tensor) -> None:
    torch.testing.assert_close(block(x), block.spatial(block.channel(x)))
    c = torch.arange(1.0, 33.0) / 32
    const = c[None, :, None, None].expand(2, 32, 8, 6)
    with torch.no_grad():  # positive squeeze weights on a positive map: every hidden unit is active
        block.channel.mlp[0].weight.uniform_(0.0, 0.2)
    w1, w2 = block.channel.mlp[0].weight, block.channel.mlp[2].weight
    gate = torch.sigmoid(2 * (w2 @ torch.relu(w1 @ c)))  # mean = max = c: the shared MLP twice
    torch.testing.assert_close(block.channel(const), const * gate[None, :, None, None])
    _spatial_hot_map(block.spatial, block.spatial.conv)


def _check_spatial_gate(block: nn.Module, x: torch.Tensor) -> None:
    _spatial_hot_map(block, block.conv)


def _check_coord(block: nn.Module, x: torch.Tensor) -> None:
    pooled_h, pooled_w = x.mean(dim=3), x.mean(dim=2)  # N,C,H and N,C,W: the two directional poolings
    assert pooled_h.shape == (4, 32, 8) and pooled_w.shape == (4, 32, 6)
    mid = block.conv1.out_channels
    w1 = block.conv1.weight[:, :, 0, 0]
    y_h = torch.relu(_bn_eval(torch.einsum("mc,nch->nmh", w1, pooled_h)[..., None], block.bn1))[..., 0]
    y_w = torch.relu(_bn_eval(torch.einsum("mc,ncw->nmw", w1, pooled_w)[..., None], block.bn1))[..., 0]
    assert y_h.shape == (4, mid, 8) and y_w.shape == (4, mid, 6)
    a_h = torch.sigmoid(torch.einsum("cm,nmh->nch", block.conv_h.weight[:, :, 0, 0], y_h))
    a_w = torch.sigmoid(torch.einsum("cm,nmw->ncw", block.conv_w.weight[:, :, 0, 0], y_w))
    torch.testing.assert_close(block(x), x * a_h[..., :, None] * a_w[..., None, :])


def _check_fusion(block: nn.Module, x: torch.Tensor) -> None:
    s = torch.sigmoid(block.alpha)  # the default: learnable alpha over coord (spatial) and SE (channel)
    assert type(block.spatial).__name__ == "CoordAttention" and type(block.channel).__name__ == "SE"
    torch.testing.assert_close(block(x), s * block.spatial(x) + (1 - s) * block.channel(x))


KNOWN_INPUT = {"none": _check_none, "se": _check_se, "cbam": _check_cbam, "spatial_gate": _check_spatial_gate,
               "coord": _check_coord, "fusion": _check_fusion}


@pytest.mark.parametrize("name", ATTENTIONS)
def test_attention_on_a_known_input(name):
    torch.manual_seed(0)
    block = create_block("attention", name, 32).eval()
    for p in block.parameters():  # non-zero biases, so a dropped bias shows
        if p.dim() == 1:
            nn.init.uniform_(p, -0.5, 0.5)
    x = torch.randn(4, 32, 8, 6)  # non-square on purpose (coordinate attention splits H and W)
    with torch.no_grad():
        KNOWN_INPUT[name](block, x)
    y = block(x) if name == "none" else _grad_ok(block.train(), x)
    assert y.shape == x.shape


def _fusion_expected(strategy: str, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    sp, ch = block.spatial(x), block.channel(x)
    if strategy == "learnable_alpha":
        return torch.sigmoid(torch.tensor(0.3)) * sp + (1 - torch.sigmoid(torch.tensor(0.3))) * ch
    if strategy == "fixed_alpha":
        return 0.25 * sp + 0.75 * ch
    if strategy == "gate":
        g = torch.sigmoid(torch.linspace(-2, 2, 16))[None, :, None, None]
        return g * sp + (1 - g) * ch
    if strategy == "sum":
        return sp + ch
    if strategy == "concat":  # the projection set to: out channel i = spatial channel i - channel branch's channel i
        return sp - ch + 0.5
    if strategy == "sequential_sc":
        return block.channel(sp)
    return block.spatial(ch)  # sequential_cs


FUSION_PARAMS = {"learnable_alpha": {"init": 0.3}, "fixed_alpha": {"alpha": 0.25}}


@pytest.mark.parametrize("strategy", FUSIONS)
def test_fusion_strategy_is_its_formula_over_its_branches(strategy):
    torch.manual_seed(0)
    block = create_block("attention", "fusion", 16, strategy=strategy, **FUSION_PARAMS.get(strategy, {})).eval()
    with torch.no_grad():
        if strategy == "gate":
            block.logits.copy_(torch.linspace(-2, 2, 16))
        if strategy == "concat":
            eye = torch.eye(16)
            block.project.weight.copy_(torch.cat([eye, -eye], dim=1)[:, :, None, None])
            block.project.bias.fill_(0.5)
        x = torch.randn(2, 16, 8, 8)
        assert not torch.allclose(block.spatial(x), block.channel(x))  # the two branches differ: the formula shows
        torch.testing.assert_close(block(x), _fusion_expected(strategy, block, x))
    assert _grad_ok(block.train(), x).shape == x.shape


def _conv_bn_act(x: torch.Tensor, conv: nn.Conv2d, bn: nn.BatchNorm2d, stride: int, act: bool = True) -> torch.Tensor:
    y = _bn_eval(torch.nn.functional.conv2d(x, conv.weight, None, stride=stride, padding=conv.kernel_size[0] // 2), bn)
    return torch.relu(y) if act else y


@pytest.mark.parametrize("block", ["plain", "double", "residual"])
@pytest.mark.parametrize("stride", [1, 2])
def test_conv_blocks_compute_conv_bn_act_attention_in_order(block, stride):
    torch.manual_seed(0)
    att = create_block("attention", "se", 16).eval()
    _alive(att.fc1)
    m = create_block("conv", block, 8, 16, stride=stride, attention=att, drop_prob=0.1, block_size=3).eval()
    for bn in (mod for mod in m.modules() if isinstance(mod, nn.BatchNorm2d)):  # an affine BN that shows
        nn.init.uniform_(bn.weight, 0.5, 1.5)
        nn.init.uniform_(bn.bias, -0.5, 0.5)
    x = torch.randn(2, 8, 16, 16)
    with torch.no_grad():
        if block == "residual":
            main = _conv_bn_act(_conv_bn_act(x, m.conv1, m.bn1, stride), m.conv2, m.bn2, 1, act=False)
            short = _conv_bn_act(x, m.shortcut[0], m.shortcut[1], stride, act=False)
            expected = torch.relu(att(main) + short)
        else:
            layers = [mod for mod in m if isinstance(mod, (nn.Conv2d, nn.BatchNorm2d))]
            y = x
            for i in range(0, len(layers), 2):
                y = _conv_bn_act(y, layers[i], layers[i + 1], stride if i == 0 else 1)
            assert len(layers) == 2 * (1 if block == "plain" else 2)
            expected = att(y)
        torch.testing.assert_close(m(x), expected)
    y = _grad_ok(m.train(), x)
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
