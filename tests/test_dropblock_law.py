"""DropBlock's two laws (torchvision's, the paper author's) against closed-form expectations, in every
layout and dtype the engine uses, and DropBlock under torch.compile."""

from __future__ import annotations


import pytest
import torch

from torch.utils._python_dispatch import TorchDispatchMode

from nasattn.blocks.dropblock import ScheduledDropBlock, drop_block2d_dense
from nasattn.models import build_model
from nasattn.registry import block_names
from nasattn.spec import ArchSpec

# (dtype, memory format) pairs the engine trains in: float32 NCHW (amp off), bf16 channels_last (CPU default)
LAYOUTS = [(torch.float32, torch.contiguous_format), (torch.bfloat16, torch.channels_last)]


def _cover_paper(n: int, block: int) -> list[int]:
    """Seeds (anywhere on the map) whose block, centred on the seed and clipped, covers each index."""
    r = block // 2
    return [min(i + r, n - 1) - max(i - r, 0) + 1 for i in range(n)]


def _cover_torchvision(n: int, block: int) -> list[int]:
    """Seeds (top-left corners where a whole block fits) whose block covers each index."""
    return [min(i, n - block) - max(0, i - block + 1) + 1 for i in range(n)]


def expected_dropped(law: str, p: float, block: int, h: int, w: int) -> float:
    """Closed form: mean over positions of 1 - (1 - gamma)^(number of seeds covering the position)."""
    if law == "paper":
        gamma, ch, cw = p / block**2, _cover_paper(h, block), _cover_paper(w, block)
    else:
        gamma = p * h * w / (block**2 * (h - block + 1) * (w - block + 1))
        ch, cw = _cover_torchvision(h, block), _cover_torchvision(w, block)
    return sum(1 - (1 - gamma) ** (a * b) for a in ch for b in cw) / (h * w)


def _dropped(fn, x: torch.Tensor, draws: int) -> float:
    zeros = 0.0
    for _ in range(draws):
        y = fn(x)
        assert y.dtype == x.dtype and y.shape == x.shape
        assert y.is_contiguous(memory_format=torch.channels_last) == x.is_contiguous(memory_format=torch.channels_last)
        zeros += float((y == 0).float().mean())
    return zeros / draws


def test_both_laws_are_registered():
    assert {"torchvision", "paper"} <= set(block_names("dropblock_law"))


def test_closed_forms_differ_as_the_issue_measured():
    """At the balanced net's stage-4 map (8x8, p=0.2, block 7) the author's law drops far less."""
    assert expected_dropped("paper", 0.2, 7, 8, 8) < 0.7 * expected_dropped("torchvision", 0.2, 7, 8, 8)
    # on a large map both are close to p; the paper's gamma ignores the border, torchvision's corrects it
    paper, tv = expected_dropped("paper", 0.05, 7, 64, 64), expected_dropped("torchvision", 0.05, 7, 64, 64)
    assert 0.04 < paper < tv < 0.05


@pytest.mark.parametrize("dtype,fmt", LAYOUTS, ids=["f32-nchw", "bf16-cl"])
@pytest.mark.parametrize("law,p,block,hw", [
    ("paper", 0.2, 7, (8, 8)), ("paper", 0.1, 5, (16, 12)), ("paper", 0.3, 3, (6, 6)),
    ("torchvision", 0.2, 7, (8, 8)), ("torchvision", 0.1, 5, (16, 12)), ("torchvision", 0.3, 3, (9, 9)),
])
def test_dropped_fraction_matches_the_closed_form(law, p, block, hw, dtype, fmt):
    torch.manual_seed(0)
    h, w = hw
    drop = ScheduledDropBlock(p, block, law=law).train()
    # the paper's mask is one per image: more images for as many independent seeds
    x = torch.ones(256 if law == "paper" else 32, 1 if law == "paper" else 8, h, w, dtype=dtype)
    expected = expected_dropped(law, p, block, h, w)
    got = _dropped(drop, x.contiguous(memory_format=fmt), 40)
    assert got == pytest.approx(expected, rel=0.05), (got, expected)


@pytest.mark.parametrize("dtype,fmt", LAYOUTS, ids=["f32-nchw", "bf16-cl"])
def test_dense_torchvision_path_follows_the_same_law(dtype, fmt):
    """The traceable path (used under torch.compile and on GPUs) with p as a tensor."""
    torch.manual_seed(0)
    x = torch.ones(32, 8, 8, 8, dtype=dtype).contiguous(memory_format=fmt)
    got = _dropped(lambda t: drop_block2d_dense(t, torch.tensor(0.2), 7), x, 40)
    assert got == pytest.approx(expected_dropped("torchvision", 0.2, 7, 8, 8), rel=0.05)


@pytest.mark.parametrize("dtype,fmt", LAYOUTS, ids=["f32-nchw", "bf16-cl"])
def test_paper_mask_is_shared_by_channels_and_torchvision_is_not(dtype, fmt):
    torch.manual_seed(0)
    x = torch.ones(4, 16, 16, 16, dtype=dtype).contiguous(memory_format=fmt)
    y = ScheduledDropBlock(0.3, 5, law="paper").train()(x)
    zero = y == 0
    assert zero.any() and torch.equal(zero, zero[:, :1].expand_as(zero))
    y = ScheduledDropBlock(0.3, 5, law="torchvision").train()(x)
    zero = y == 0
    assert zero.any() and not torch.equal(zero, zero[:, :1].expand_as(zero))


def test_paper_blocks_are_clipped_squares_centred_on_their_seed():
    """One seed in a corner of an otherwise empty draw: the author's max-pool gives a clipped block."""
    torch.manual_seed(0)
    x = torch.ones(1, 3, 10, 10)
    drop = ScheduledDropBlock(0.999, 5, law="paper").train()
    drop.p_now.fill_(0.999)
    # rand < gamma everywhere only when gamma >= 1; draw many maps and check each zero set is a union of
    # clipped 5x5 squares: every zero lies within distance 2 (Chebyshev) of a zero whose square is all zeros
    for _ in range(20):
        zero = (drop(x)[0, 0] == 0)
        assert zero.any()
        pooled = torch.nn.functional.max_pool2d((~zero).float()[None, None], 5, 1, 2)[0, 0]
        centres = pooled == 0  # positions whose clipped 5x5 neighbourhood is all dropped
        cover = torch.nn.functional.max_pool2d(centres.float()[None, None], 5, 1, 2)[0, 0] > 0
        assert torch.equal(cover, zero)


def test_kept_activations_are_rescaled_to_keep_the_mean():
    torch.manual_seed(0)
    for law in ("paper", "torchvision"):
        drop = ScheduledDropBlock(0.2, 5, law=law).train()
        y = drop(torch.ones(64, 8, 16, 16))
        assert float(y.mean()) == pytest.approx(1.0, abs=1e-3)


def test_arch_spec_selects_the_law_and_keeps_it_through_copies():
    data = {"stages": [{"width": 8}, {"width": 8, "downsample": "stride"}],
            "dropblock": {"schedule": "constant", "p": 0.1, "block_size": 3}}
    spec = ArchSpec.from_dict(data)
    assert spec.dropblock.law == "torchvision" and "law" not in spec.to_dict()["dropblock"]  # default unwritten
    paper = spec.with_dropblock_law("paper")
    assert paper.dropblock.law == "paper" and paper.to_dict()["dropblock"]["law"] == "paper"
    assert ArchSpec.from_dict(paper.to_dict()).dropblock.law == "paper"
    assert ArchSpec.from_yaml(paper.to_yaml()).dropblock.law == "paper"
    assert paper.scaled(0.5).dropblock.law == "paper"
    assert paper.model_copy(deep=True).dropblock.law == "paper"
    copied = spec.model_copy(update={"dropblock": spec.dropblock.model_copy(update={"law": "paper"})})
    assert ArchSpec.from_dict(copied.to_dict()).dropblock.law == "paper"
    drops = [m for m in build_model(paper).modules() if isinstance(m, ScheduledDropBlock)]
    assert drops and all(d.law == "paper" for d in drops)
    with pytest.raises(Exception, match="unknown dropblock_law block 'nope'; allowed: .*paper"):
        ArchSpec.from_dict({**data, "dropblock": {**data["dropblock"], "law": "nope"}})


def test_ramp_changes_a_buffer_not_a_compiled_guard():
    """A DropBlock ramp must not recompile: p lives in a buffer, so one graph serves every epoch."""
    compiles = []

    def backend(gm, inputs):
        compiles.append(gm)
        return gm.forward

    torch.manual_seed(0)
    torch._dynamo.reset()
    drop = ScheduledDropBlock(0.2, 3).train()
    compiled = torch.compile(drop, backend=backend, fullgraph=True)
    x = torch.ones(4, 8, 8, 8)
    fractions = []
    for factor in (0.25, 0.5, 1.0):
        drop.set_ramp(factor)
        fractions.append(float((compiled(x) == 0).float().mean()))
    assert len(compiles) == 1
    assert fractions[0] < fractions[2]  # the ramp takes effect inside the one graph


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_balanced_preset_has_no_graph_break(training):
    from nasattn.presets import get_preset

    torch._dynamo.reset()
    torch.manual_seed(0)
    model = build_model(get_preset("balanced").arch.scaled(0.125)).train(training)
    explained = torch._dynamo.explain(model)(torch.randn(2, 3, 16, 16))
    assert explained.graph_break_count == 0, [str(r.reason) for r in explained.break_reasons]
    assert explained.graph_count == 1
    if training:  # DropBlock is the identity in eval mode, whatever its law
        paper = build_model(get_preset("balanced").arch.scaled(0.125).with_dropblock_law("paper")).train()
        torch._dynamo.reset()
        assert torch._dynamo.explain(paper)(torch.randn(2, 3, 16, 16)).graph_break_count == 0


@pytest.mark.parametrize("law", ["paper", "torchvision"])
def test_library_closed_form_equals_the_tests(law):
    """``expected_dropped_fraction`` (used by reports and the device check) restates the same closed form."""
    from nasattn.blocks.dropblock import expected_dropped_fraction

    for p, block, h, w in ((0.05, 7, 64, 64), (0.2, 7, 8, 8), (0.1, 5, 16, 12), (0.3, 3, 6, 6)):
        assert expected_dropped_fraction(law, p, block, h, w) == pytest.approx(expected_dropped(law, p, block, h, w))
    with pytest.raises(ValueError, match="known: paper, torchvision"):
        expected_dropped_fraction("other", 0.1, 3, 8, 8)


class _Float32Outputs(TorchDispatchMode):
    """Records every aten op whose output is a float32 tensor with at least ``numel`` elements."""

    def __init__(self, numel: int) -> None:
        super().__init__()
        self.numel, self.ops = numel, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        outs = out if isinstance(out, (tuple, list)) else [out]
        if any(isinstance(o, torch.Tensor) and o.dtype == torch.float32 and o.numel() >= self.numel for o in outs):
            self.ops.append(str(func.overloadpacket.__name__))
        return out


@pytest.mark.parametrize("law", ["paper", "torchvision"])
def test_the_mask_is_built_in_the_activation_dtype(law):
    """Under bf16 only the uniform draw is a float32 tensor of the map's size: pad, layout, pool and rescale are bf16."""
    x = torch.ones(2, 8, 16, 16, dtype=torch.bfloat16).contiguous(memory_format=torch.channels_last)
    fn = (lambda t: drop_block2d_dense(t, torch.tensor(0.2), 5)) if law == "torchvision" else \
        (lambda t: ScheduledDropBlock(0.2, 5, law).train()(t))
    mode = _Float32Outputs(numel=2 * 16 * 16)  # the paper law's one-channel mask is this size
    with mode:
        y = fn(x)
    assert y.dtype == torch.bfloat16
    assert set(mode.ops) <= {"rand", "uniform_"}, mode.ops
