"""The paper augmentation against torchvision on PIL images (the author's code), and no per-batch host work."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from nasattn.data import load_dataset, make_eval_transform, make_train_transform
from nasattn.data.augment import (
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    apply_jitter,
    blur,
    jitter_params,
    rotate,
)


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return load_dataset("eurosat-mini").images[::50][:10].float()  # one real image per class


def _pil(img: torch.Tensor) -> Image.Image:
    return Image.fromarray(img.permute(1, 2, 0).round().byte().numpy())


def _tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(img)).permute(2, 0, 1).float()


def test_rotation_is_pils_nearest_rotation(x):
    """RandomRotation's default: nearest, about the centre, zero fill, counter-clockwise for positive angles."""
    for angle in (-87.3, -45.0, -12.5, 7.7, 30.0, 61.2, 90.0):
        ours = rotate(x, torch.full((len(x),), angle))
        ref = torch.stack([_tensor(_pil(img).rotate(angle, resample=Image.NEAREST)) for img in x])
        assert (ours == ref).float().mean() > 0.999, angle
        for img, out in zip(x, ours):  # nearest invents no value
            assert set(out.unique().tolist()) <= set(img.unique().tolist()) | {0.0}


@pytest.mark.parametrize("op,ref,factors", [
    (adjust_brightness, TF.adjust_brightness, (0.7, 1.3)),
    (adjust_contrast, TF.adjust_contrast, (0.7, 1.3)),
    (adjust_saturation, TF.adjust_saturation, (0.7, 1.3)),
])
def test_jitter_operations_match_torchvision_on_pil_up_to_rounding(x, op, ref, factors):
    for f in factors:
        ours = op(x, torch.full((len(x),), f))
        theirs = torch.stack([_tensor(ref(_pil(img), f)) for img in x])
        assert (ours - theirs).abs().max() <= 1.5  # PIL rounds to 8 bits; the blend itself is the same


def test_hue_is_an_hsv_shift_as_torchvision(x):
    for shift in (-0.1, -0.03, 0.05, 0.1):
        ours = adjust_hue(x, torch.full((len(x),), shift))
        tensor_path = torch.stack([TF.adjust_hue(img / 255, shift) * 255 for img in x])
        torch.testing.assert_close(ours, tensor_path, atol=1e-3, rtol=0)
        pil_path = torch.stack([_tensor(TF.adjust_hue(_pil(img), shift)) for img in x])
        assert (ours - pil_path).abs().max() <= 5  # PIL's HSV is 8-bit


def test_blur_is_torchvisions_gaussian_blur(x):
    sigmas = torch.linspace(0.1, 2.0, len(x))
    ours = blur(x, 3, sigmas)
    ref = torch.stack([TF.gaussian_blur(img, [3, 3], [float(s), float(s)]) for img, s in zip(x, sigmas)])
    torch.testing.assert_close(ours, ref, atol=1e-3, rtol=0)


def test_jitter_runs_each_images_operations_in_its_own_random_order(x):
    p = jitter_params(len(x), torch.Generator().manual_seed(0), x.device, 0.3, 0.3, 0.3, 0.1)
    assert all(sorted(o) == [0, 1, 2, 3] for o in p.order.tolist())
    batched = apply_jitter(x, p)
    ops = [adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue]
    factors = [p.brightness, p.contrast, p.saturation, p.hue]
    for i, order in enumerate(p.order.tolist()):
        y = x[i : i + 1]
        for k in order:
            y = ops[k](y, factors[k][i : i + 1])
        torch.testing.assert_close(batched[i : i + 1], y, atol=1e-3, rtol=0)
    one_order = type(p)(p.brightness, p.contrast, p.saturation, p.hue, torch.arange(4).repeat(len(x), 1))
    assert not torch.allclose(apply_jitter(x, one_order), batched, atol=0.5)  # the order matters, and is used


def test_jitter_orders_are_uniform_over_the_24_permutations():
    from scipy.stats import chisquare

    order = jitter_params(24000, torch.Generator().manual_seed(1), torch.device("cpu"), 0.3, 0.3, 0.3, 0.1).order
    codes = (order * torch.tensor([64, 16, 4, 1])).sum(1)
    counts = torch.unique(codes, return_counts=True)[1]
    assert len(counts) == 24 and chisquare(counts.numpy()).pvalue > 1e-3


@pytest.mark.parametrize("augment", ["paper", "dihedral", "flips", "none"])
def test_no_tensor_from_python_values_per_batch(monkeypatch, augment):
    """Constants are built once per transform: batches after the first create none (no host->device copy)."""
    batch = load_dataset("eurosat-mini").images[:8]
    train_tf = make_train_transform(augment, crop_pad=2 if augment == "flips" else 0)
    eval_tf = make_eval_transform()
    g = torch.Generator().manual_seed(0)
    train_tf(batch, g), eval_tf(batch)  # the first batch may build the constants
    calls = []
    for name in ("tensor", "as_tensor"):
        real = getattr(torch, name)
        monkeypatch.setattr(torch, name, lambda *a, _real=real, _name=name, **k: calls.append(_name) or _real(*a, **k))
    monkeypatch.setattr(torch.linalg, "inv", lambda *a, **k: calls.append("inv"))
    for _ in range(5):
        train_tf(batch, g)
        eval_tf(batch)
    assert calls == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_cuda_augmentation_step_never_syncs():
    batch = load_dataset("eurosat-mini").images[:32].cuda()
    g = torch.Generator(device="cuda").manual_seed(0)
    tf, ev = make_train_transform("paper"), make_eval_transform()
    tf(batch, g), ev(batch)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            tf(batch, g)
            ev(batch)
    finally:
        torch.cuda.set_sync_debug_mode("default")
