"""nasattn ablate: variant generation, ablation files, the CLI's errors, and one small end-to-end run."""

from __future__ import annotations

import copy
import io
import json
import re
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from rich.console import Console
from typer.testing import CliRunner

from nasattn.ablation import builtin_variants, load_ablation, make_variants, merge_override, plan_variants
from nasattn.config import ConfigError
from nasattn.recipe import Recipe
from nasattn.presets import get_preset, list_presets

BUILTIN_VARIANTS = builtin_variants()
HAS_NO_DECAY = "no_weight_decay" in Recipe.model_fields
ATTENTION = ["no_attention", "se_only", "coord_only", "cbam"]
FUSION = ["fusion_fixed_alpha", "fusion_gate", "fusion_sum", "fusion_concat", "fusion_sequential_sc", "fusion_sequential_cs"]


def diff_paths(a: Any, b: Any, path: str = "") -> list[str]:
    """Paths (``stages[0].attention.type``) at which two JSON-like values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            out += diff_paths(a.get(k, "<missing>"), b.get(k, "<missing>"), f"{path}.{k}" if path else str(k))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [p for i, (x, y) in enumerate(zip(a, b)) for p in diff_paths(x, y, f"{path}[{i}]")]
    return [] if a == b else [path]


def _dumps(variant):
    spec, recipe = variant
    return spec.model_dump(mode="json", by_alias=True), recipe.model_dump(mode="json")


@pytest.fixture(scope="module")
def balanced():
    p = get_preset("balanced")
    return p.arch, p.recipe


def _changed(name: str, base: tuple, variant: tuple, epochs: int | None) -> None:
    """Assert that ``variant`` differs from ``base`` in exactly the component ``name`` names."""
    base_arch, base_recipe = base
    arch, rec = variant
    arch_diff, recipe_diff = diff_paths(base_arch, arch), diff_paths(base_recipe, rec)
    assert arch_diff or recipe_diff, name
    if name in ATTENTION or name.startswith("fusion_"):
        assert not recipe_diff, name
        assert all(re.fullmatch(r"stages\[\d+\]\.attention(\..*)?", p) for p in arch_diff), (name, arch_diff)
        if name.startswith("fusion_"):
            strategy = name.removeprefix("fusion_")
            for before, after in zip(base_arch["stages"], arch["stages"]):
                if (before.get("attention") or {}).get("type") == "fusion":
                    assert after["attention"]["strategy"] == strategy
                    assert {k: after["attention"][k] for k in ("spatial", "channel")} == \
                        {k: before["attention"][k] for k in ("spatial", "channel")}, name
                else:
                    assert after.get("attention") == before.get("attention"), name
    elif name in ("no_dropblock", "constant_dropblock"):
        assert not recipe_diff, name
        assert all(p.startswith("dropblock.") for p in arch_diff), (name, arch_diff)
        assert arch["dropblock"]["schedule"] == {"no_dropblock": "none", "constant_dropblock": "constant"}[name]
    elif name == "no_class_weights":
        assert not arch_diff and recipe_diff == ["class_weights"] and rec["class_weights"] == "none"
    elif name == "alpha_no_decay":
        assert not arch_diff and recipe_diff == ["no_weight_decay"] and "fusion" in rec["no_weight_decay"]
    else:  # paper_<preset>: the preset's own architecture and recipe (only the file's epochs)
        preset = get_preset(name.removeprefix("paper_"))
        assert arch == preset.arch.model_dump(mode="json", by_alias=True), name
        want = dict(preset.recipe.model_dump(mode="json"), **({} if epochs is None else {"epochs": epochs}))
        assert rec == want, (name, diff_paths(want, rec))


@pytest.mark.parametrize("preset", list_presets())
def test_every_builtin_variant_changes_exactly_its_component(preset: str, tmp_path: Path):
    """For each preset as the base, with an ablation file that overrides recipe fields (#12 §3)."""
    f = tmp_path / "abl.yaml"
    f.write_text(f"base: {{preset: {preset}}}\nepochs: 2\nrecipe: {{schedule: cosine, lr: 0.002, optimizer: adamw}}\n")
    plan = load_ablation(f).plan()
    base = _dumps(plan.variants["base"])
    assert base[1]["schedule"] == "cosine" and base[1]["lr"] == 0.002 and base[1]["epochs"] == 2
    assert set(plan.variants) | set(plan.skipped) == set(builtin_variants())
    assert plan.skipped[f"paper_{preset}"].startswith(f"the base is the {preset} preset")
    for name in plan.variants:
        if name != "base":
            _changed(name, base, _dumps(plan.variants[name]), epochs=2)
            assert plan.differences[name], name
    for name, why in plan.skipped.items():
        assert why, name


def test_builtin_variants_of_balanced(balanced):
    spec, recipe = balanced
    plan = plan_variants(spec, recipe)
    expected = ["base", *ATTENTION, *FUSION, "no_dropblock", "constant_dropblock", "no_class_weights",
                *(["alpha_no_decay"] if HAS_NO_DECAY else []), "paper_baseline", "paper_cbam"]
    assert sorted(plan.variants) == sorted(expected)
    skipped = {"fusion_learnable_alpha": "equal to the base", "paper_balanced": "equal to the base"}
    if not HAS_NO_DECAY:
        skipped["alpha_no_decay"] = "this nasattn's recipe has no no_weight_decay field"
    assert plan.skipped == skipped
    base = _dumps(plan.variants["base"])
    assert base == (spec.model_dump(mode="json", by_alias=True), recipe.model_dump(mode="json"))
    for name in plan.variants:
        if name != "base":
            _changed(name, base, _dumps(plan.variants[name]), epochs=None)

    att = lambda name: plan.variants[name][0].stages[0].attention  # noqa: E731
    assert att("no_attention").type == "none"
    assert (att("se_only").type, att("se_only").params) == ("se", {"reduction": 16, "bias": False})  # the base's SE branch
    assert (att("coord_only").type, att("coord_only").params) == ("coord", {"reduction": 8})
    assert att("cbam").type == "cbam"
    fixed = att("fusion_fixed_alpha").params
    assert fixed["strategy"] == "fixed_alpha" and fixed["alpha"] == 0.5 and "init" not in fixed
    assert fixed["spatial"] == {"type": "coord", "reduction": 8}
    db = plan.variants["constant_dropblock"][0].dropblock
    assert db.type == "constant" and db.params["p"] == pytest.approx(0.125) and db.block_size == 7
    assert plan.variants["no_dropblock"][0].dropblock.type == "none"
    assert plan.differences["no_class_weights"] == ['recipe.class_weights: [1.0, 0.8, 1.3, 1.0, 1.3, 1.0, 1.3, 0.8, 1.0, 0.8] -> "none"']
    assert plan.differences["cbam"][0].startswith("arch.stages[*].attention: ")


def test_alpha_no_decay_plan_only_for_a_learnable_fusion():
    from nasattn.ablation.variants import Skip, no_decay_recipe

    balanced_arch = get_preset("balanced").arch.to_dict()
    assert no_decay_recipe(balanced_arch, {"lr": 0.1}) == {"lr": 0.1, "no_weight_decay": ["fusion"]}
    assert no_decay_recipe(balanced_arch, {"no_weight_decay": ["norm"]})["no_weight_decay"] == ["norm", "fusion"]
    with pytest.raises(Skip, match="already excludes"):
        no_decay_recipe(balanced_arch, {"no_weight_decay": ["fusion"]})
    fixed = copy.deepcopy(balanced_arch)
    for stage in fixed["stages"]:  # fixed_alpha: a fusion without parameters
        stage["attention"] = {k: v for k, v in stage["attention"].items() if k != "init"} | {"strategy": "fixed_alpha"}
    with pytest.raises(Skip, match="learnable"):
        no_decay_recipe(fixed, {})
    with pytest.raises(Skip, match="learnable"):
        no_decay_recipe(get_preset("cbam").arch.to_dict(), {})
    for stage in fixed["stages"]:  # gate: a fusion with a learnable gate
        stage["attention"] = {k: v for k, v in stage["attention"].items() if k != "alpha"} | {"strategy": "gate"}
    assert no_decay_recipe(fixed, {})["no_weight_decay"] == ["fusion"]
    plan = plan_variants(get_preset("balanced").arch, get_preset("balanced").recipe, include=["alpha_no_decay"])
    if HAS_NO_DECAY:
        assert plan.variants["alpha_no_decay"][1].no_weight_decay == ["fusion"]
    else:
        assert plan.skipped["alpha_no_decay"] == "this nasattn's recipe has no no_weight_decay field"


def test_a_registered_fusion_is_ablated_too(balanced):
    import torch.nn as nn

    from nasattn import registry

    @registry.register_block("fusion", "test_max_mix")
    class MaxMix(nn.Module):
        def __init__(self, channels: int, spatial: nn.Module, channel: nn.Module, scale: float = 2.0) -> None:
            super().__init__()
            self.spatial, self.channel, self.scale = spatial, channel, scale

        def forward(self, x):
            return self.scale * torch.maximum(self.spatial(x), self.channel(x))

    try:
        assert "fusion_test_max_mix" in builtin_variants()
        plan = plan_variants(*balanced)
        spec = plan.variants["fusion_test_max_mix"][0]
        assert {s.attention.params["strategy"] for s in spec.stages} == {"test_max_mix"}
        assert spec.stages[0].attention.params["scale"] == 2.0
        _changed("fusion_test_max_mix", _dumps(plan.variants["base"]), _dumps(plan.variants["fusion_test_max_mix"]), None)
    finally:
        registry._REGISTRY["fusion"].pop("test_max_mix", None)
    assert "fusion_test_max_mix" not in builtin_variants()


def test_paper_variants_come_from_the_preset_files(tmp_path: Path, monkeypatch):
    import shutil

    import nasattn.presets as presets

    folder = tmp_path / "presets"
    folder.mkdir()
    for f in presets.PRESET_DIR.glob("*.yaml"):
        shutil.copy(f, folder / f.name)
    (folder / "cbam_wide.yaml").write_text((folder / "cbam.yaml").read_text())  # a fourth preset: one new file
    monkeypatch.setattr(presets, "PRESET_DIR", folder)
    assert "paper_cbam_wide" in builtin_variants()
    plan = plan_variants(*(get_preset("balanced").arch, get_preset("balanced").recipe), include=["paper_cbam_wide"])
    assert list(plan.variants) == ["base", "paper_cbam_wide"]
    f = tmp_path / "abl.yaml"
    f.write_text("base: cbam_wide\n")
    assert load_ablation(f).ablation.base.preset == "cbam_wide"


def test_variants_that_do_not_apply_are_skipped_with_a_reason():
    p = get_preset("baseline")
    plan = plan_variants(p.arch, p.recipe)
    assert "fusion_gate" in plan.skipped and "no fusion" in plan.skipped["fusion_gate"]
    assert "DropBlock" in plan.skipped["no_dropblock"]
    assert "class weights" in plan.skipped["no_class_weights"]
    assert plan.skipped["no_attention"] == "equal to the base"
    # a base without attention: the attention variants add it to every stage
    se = plan.variants["se_only"][0]
    assert [s.attention.type for s in se.stages] == ["se"] * 3
    assert list(make_variants(p.arch, p.recipe)) == list(plan.variants)


def test_include_exclude_and_custom_variants(balanced):
    spec, recipe = balanced
    v = make_variants(spec, recipe, include=["no_attention", "fusion_sum", "fusion_learnable_alpha"])
    assert list(v) == ["base", "no_attention", "fusion_sum"]  # learnable_alpha is the base: skipped
    v = make_variants(spec, recipe, exclude=[n for n in BUILTIN_VARIANTS if n != "base" and n != "cbam"])
    assert list(v) == ["base", "cbam"]

    custom = {
        "se_r8": {"arch": {"stages": {"*": {"attention": {"type": "se", "reduction": 8}}}}},
        "wide_last": {"arch": {"stages": {"-1": {"width": 1024}}}, "recipe": {"lr": 0.0005}},
    }
    v = make_variants(spec, recipe, include=[], custom=custom)
    assert list(v) == ["base", "se_r8", "wide_last"]
    se = v["se_r8"][0]
    assert all(s.attention.type == "se" and s.attention.params == {"reduction": 8} for s in se.stages)
    assert diff_paths(_dumps(v["base"])[0], _dumps(v["se_r8"])[0])[0].startswith("stages[0].attention")
    arch_diff = diff_paths(_dumps(v["base"])[0], _dumps(v["wide_last"])[0])
    rec_diff = diff_paths(_dumps(v["base"])[1], _dumps(v["wide_last"])[1])
    assert arch_diff == ["stages[3].width"] and rec_diff == ["lr"]
    assert list(make_variants(spec, recipe, include=[], exclude=["se_r8"], custom=custom)) == ["base", "wide_last"]
    same = plan_variants(spec, recipe, include=[], custom={"same": {"recipe": {"lr": recipe.lr}}})
    assert list(same.variants) == ["base"] and same.skipped == {"same": "equal to the base"}

    with pytest.raises(ConfigError, match="include: unknown variant 'nope'"):
        make_variants(spec, recipe, include=["nope"])
    with pytest.raises(ConfigError, match="built-in variant name"):
        make_variants(spec, recipe, custom={"cbam": {"arch": {}}})
    with pytest.raises(ConfigError, match="variants.bad.arch"):
        make_variants(spec, recipe, custom={"bad": {"arch": {"stages": {"0": {"attention": {"type": "warp"}}}}}})
    with pytest.raises(ConfigError, match="variants.bad.recipe"):
        make_variants(spec, recipe, custom={"bad": {"recipe": {"optimizer": "lion"}}})
    with pytest.raises(ConfigError, match="out of range"):
        make_variants(spec, recipe, custom={"bad": {"arch": {"stages": {"9": {"width": 8}}}}})
    assert merge_override({"a": [1, {"b": 1}]}, {"a": {"1": {"c": 2}}}) == {"a": [1, {"b": 1, "c": 2}]}


def test_ablation_file_validation(tmp_path: Path):
    good = tmp_path / "abl.yaml"
    good.write_text("base: {preset: cbam}\nseeds: [3, 4]\ndata: imgs\nepochs: 2\ninclude: [no_attention]\n"
                    "variants: {mine: {recipe: {lr: 0.01}}}\nresources: {gpus_per_trial: 0.25}\n")
    (tmp_path / "imgs").mkdir()
    loaded = load_ablation(good)
    assert loaded.ablation.seeds == [3, 4]
    assert loaded.resolved_data() == str((tmp_path / "imgs").resolve())  # relative to the file
    plan = loaded.plan()
    assert list(plan.variants) == ["base", "no_attention", "mine"]
    assert all(r.epochs == 2 for _, r in plan.variants.values())
    assert plan.variants["mine"][1].lr == 0.01
    # --set and flags
    loaded = load_ablation(good, {"seeds": [0], "base": {"preset": "balanced"}})
    assert loaded.ablation.base.preset == "balanced" and loaded.ablation.seeds == [0]
    assert loaded.ablation.primary_metric == "test_accuracy"  # the verdict's metric unless the file names another

    cases = {
        "seedz: [1]\n": "seedz: unknown field",
        "seed: 1\n": "seed: unknown field (a list of seeds: seeds: [0, 1, 2]); allowed: name, description, ",
        "resources: {cpu: 1}\n": "resources.cpu: unknown field; allowed: cpus_per_trial, gpus_per_trial",
        "correction: bonferroni\n": "correction",
        "primary_metric: ece\n": "primary_metric",
        "split_seeds: [1, 1]\n": "split_seeds: seeds [1, 1] repeat a seed",
        "resources: {cpus_per_trial: 0}\n": "resources.cpus_per_trial",
        "base: {preset: huge}\n": "base.preset: unknown preset 'huge'",
        "base: {preset: cbam, arch: x.yaml}\n": "exactly one of",
        "seeds: [1, 1]\n": "repeat a seed",
        "recipe: {optimizer: lion}\n": "recipe",
        "recipe: {epochs: 3}\n": "recipe.epochs: set the epochs in the top-level field epochs",
        "include: [warp_attention]\n": "include: unknown variant 'warp_attention'",
        "variants: {x: {arch: {stages: {'*': {depth: 0}}}}}\n": "variants.x.arch",
        "variants: {x: {archh: {}}}\n": "variants.x.archh: unknown field",
    }
    for text, message in cases.items():
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(ConfigError) as e:
            load_ablation(bad)
        assert str(bad) in str(e.value) and message in str(e.value), (text, str(e.value))


def test_rows_and_csv_when_trials_failed(tmp_path: Path):
    from nasattn.ablation.run import ablation_rows, write_outputs

    run = tmp_path / "runs" / "base" / "seed0"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({
        "test_accuracy": 0.5, "val_accuracy": 0.4, "kappa": 0.3, "per_class_accuracy": {"Forest": 1.0, "River": 0.0},
        "alpha": {"stages.0.0.attention": 0.6}, "confusion_matrix": [[1, 0], [1, 0]], "params": 10,
    }))
    (run / "DONE").write_text("{}")
    configs = [{"variant": "base", "seed": 0, "run_dir": str(run)},
               {"variant": "no_attention", "seed": 0, "run_dir": str(tmp_path / "runs" / "no_attention" / "seed0")}]
    tune_rows = [{"config.index": 1, "status": "ERROR", "error": "RuntimeError: boom"}]
    rows = ablation_rows(configs, tune_rows)
    from rich.console import Console

    console = Console(record=True, width=200)
    result = write_outputs(tmp_path, rows, ["base", "no_attention"], report=False, console=console)
    printed = console.export_text()
    assert "p adj." in printed and "1 (<3)" in printed and "CIs cover: training seeds on one fixed split" in printed
    df = pd.read_csv(result.csv)
    assert list(df.columns[:8]) == ["variant", "seed", "split_seed", "status", "error", "run_dir", "test_accuracy", "val_accuracy"]
    assert df["status"].tolist() == ["COMPLETE", "ERROR"]
    assert df.loc[1, "error"] == "RuntimeError: boom"
    assert df.loc[0, "per_class_accuracy/Forest"] == 1.0 and df.loc[0, "alpha/stages.0.0.attention"] == 0.6
    assert "confusion_matrix" not in df.columns
    assert result.summary[0]["n"] == 1 and result.summary[1]["n"] == 0


def test_cli_bad_input_exits_2(tmp_path: Path):
    from nasattn.cli.main import app

    runner = CliRunner()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "ablation.csv").write_text("x\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("resources: {max_concurrent: 0}\n")
    for args, message in [
        (["ablate", "--preset", "huge", "--dry-run"], "unknown preset"),
        (["ablate", "--include", "nope", "--dry-run"], "unknown variant"),
        (["ablate", "--seeds", "a,b", "--dry-run"], "--seeds"),
        (["ablate", str(tmp_path / "missing.yaml")], "no such file"),
        (["ablate", str(bad), "--dry-run"], "resources.max_concurrent"),
        (["ablate", "--preset", "cbam", "--arch", str(bad)], "at most one"),
        (["ablate", "--preset", "baseline", "--data", "eurosat-mini", "--out", str(busy)], "--resume"),
    ]:
        res = runner.invoke(app, args)
        assert res.exit_code == 2, (args, res.output)
        assert message in res.output, (args, res.output)
    res = runner.invoke(app, ["ablate", "--preset", "balanced", "--include", "no_attention", "--seeds", "0,1", "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "no_attention" in res.output and "4 trials" in res.output
    assert 'no_attention differs from base in: arch.stages[*].attention: {"type": "fusion"' in res.output


def _no_ray(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("Ray was started")


@pytest.mark.slow
def test_end_to_end_ablation_through_ray_and_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from nasattn.ablation import run_ablation
    from nasattn.tune import DONE_MARKER

    out = tmp_path / "abl"
    overrides = {
        "base": {"preset": "balanced"}, "include": ["no_attention"], "seeds": [0, 1], "data": "eurosat-mini",
        "epochs": 1, "width_mult": 0.125, "max_steps_per_epoch": 2, "checkpoint_every": 0,
        "resources": {"cpus_per_trial": 1, "max_concurrent": 2}, "output": str(out), "report": False,
        "zero_cost": False,  # the training-free scores are the subject of test_zero_cost.py and test_fidelity.py
    }
    t0 = time.time()
    result = run_ablation(load_ablation(None, overrides), live=False, command="nasattn ablate (test)")
    first_s = time.time() - t0
    df = pd.read_csv(out / "ablation.csv")
    assert len(df) == 4 and set(df["status"]) == {"COMPLETE"}, df[["variant", "seed", "status", "error"]]
    assert sorted(zip(df["variant"], df["seed"])) == [("base", 0), ("base", 1), ("no_attention", 0), ("no_attention", 1)]
    for col in ("test_accuracy", "kappa", "params", "epochs_run", "per_class_accuracy/Forest"):
        assert df[col].notna().all(), col
    assert df.filter(like="alpha/").loc[df["variant"] == "base"].notna().all().all()
    info = json.loads((out / "ablation.json").read_text())
    assert info["base"] == "base" and info["seeds"] == [0, 1] and set(info["variants"]) == {"base", "no_attention"}
    assert info["variants"]["no_attention"]["arch"]["stages"][0]["attention"]["type"] == "none"
    markers = {}
    for variant in ("base", "no_attention"):
        for seed in (0, 1):
            run = out / "runs" / variant / f"seed{seed}"
            assert (run / "metrics.json").is_file() and (run / "model.pt").is_file()
            assert json.loads((run / "metrics.json").read_text())["variant"] == variant
            markers[run] = ((run / DONE_MARKER).stat().st_mtime_ns, (run / "model.pt").stat().st_mtime_ns)
    # Tune reuses a finished run's process for the next (reuse_actors): 4 runs, 2 at a time, in 2 processes
    pids = {json.loads(p.read_text())["pid"] for p in (out / "runs").glob("*/seed*/placement.json")}
    assert len(pids) == 2, pids
    assert [s["variant"] for s in result.summary] == ["base", "no_attention"] and result.summary[0]["n"] == 2
    assert set(df["split_seed"]) == {42}
    summary = pd.read_csv(out / "summary.csv")
    na = summary.set_index("variant").loc["no_attention"]
    assert na["few_seeds"] and na["test_accuracy_n_pairs"] == 2 and na["correction"] == "holm"
    assert "seed0: b=" in na["mcnemar_per_run"] and "seed1: b=" in na["mcnemar_per_run"]  # both runs' predictions.csv
    assert "mcnemar_p" not in summary.columns and na["verdict"].startswith("not testable with 2 runs")
    assert "one fixed split" in na["ci_covers"]

    with pytest.raises(ConfigError, match="--resume"):
        run_ablation(load_ablation(None, overrides), live=False)
    trial_dirs = sorted(p.name for p in (out / "tune").iterdir() if p.is_dir())
    assert len(trial_dirs) == 4
    t0 = time.time()
    said = io.StringIO()
    monkeypatch.setattr("nasattn.ablation.run.start_ray", _no_ray)
    again = run_ablation(load_ablation(None, overrides), resume=True, live=False, console=Console(file=said, width=200))
    resume_s = time.time() - t0
    assert again.experiment == "tune"  # the same Tune experiment
    # every run is finished (DONE): the resume starts no Ray and no trial
    assert "all 4 runs are finished: nothing to train" in said.getvalue() and "ray:" not in said.getvalue()
    assert sorted(p.name for p in (out / "tune").iterdir() if p.is_dir()) == trial_dirs
    for run, stamps in markers.items():
        assert ((run / DONE_MARKER).stat().st_mtime_ns, (run / "model.pt").stat().st_mtime_ns) == stamps, run
    df2 = pd.read_csv(out / "ablation.csv")
    assert len(df2) == 4 and df2["test_accuracy"].tolist() == df["test_accuracy"].tolist()
    print(f"e2e ablation: first run {first_s:.1f}s, resume {resume_s:.1f}s")
