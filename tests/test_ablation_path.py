"""Ablation paths (nasattn ablate --path): the decision registry, the greedy walk on a synthetic objective,
endpoints, the dry run, and one small end-to-end run through Ray (slow)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nasattn.ablation.path import DECISION_NAMES, PathInterrupted, compose, decompose, differing, flip, greedy_path
from nasattn.ablation.path.endpoints import resolve_endpoint
from nasattn.ablation.path.greedy import PathError, trainings
from nasattn.config import ConfigError, to_yaml
from nasattn.recipe import Recipe
from nasattn.presets import load_arch_source

REPO = Path(__file__).resolve().parents[1]
TRIAL25 = REPO / "reports" / "ablation-path-cpu" / "trial25.yaml"


def point(preset: str | None = None, path: Path | None = None) -> tuple[dict, dict]:
    spec, recipe = load_arch_source(preset=preset, path=path)
    return spec.to_dict(), Recipe.model_validate(recipe).to_dict()


def unnamed(p: tuple[dict, dict]) -> tuple[dict, dict]:
    return {**p[0], "name": None}, p[1]


# ------------------------------------------------------------------------------------- decisions
@pytest.mark.parametrize("a,b", [("balanced", "baseline"), ("balanced", "cbam"), ("cbam", "baseline"), ("balanced", TRIAL25)])
def test_flipping_every_decision_gives_to_in_any_order(a, b):
    start = point(preset=a)
    target = point(path=b) if isinstance(b, Path) else point(preset=b)
    names = differing(start, target)
    assert names, "the two ends must differ"
    assert unnamed(flip(start, target, set(names))) == unnamed(target)
    assert unnamed(flip(start, target, set(DECISION_NAMES))) == unnamed(target)
    # the greedy path flips in any order: every prefix of every order, completed, is TO. Before the layout
    # (stage count) is flipped, a flipped per-stage decision holds TO's values fitted to FROM's stage count;
    # after it, a per-stage decision not yet flipped may already agree with TO (FROM's list cut to TO's count).
    for order in itertools.islice(itertools.permutations(names), 0, 24):
        for i in range(1, len(order)):
            mid = flip(start, target, set(order[:i]))
            per_stage = {"block", "widths", "attention"} if "layout" in order[i:] else set()
            moot = {"block", "widths", "attention"} if "layout" in order[:i] else set()
            assert set(order[i:]) - moot <= set(differing(mid, target)) <= set(order[i:]) | per_stage
            assert unnamed(flip(mid, target, set(order[i:]))) == unnamed(target)


def test_decompose_compose_round_trip_and_each_field_has_one_owner():
    p = point(preset="balanced")
    assert unnamed(compose(decompose(p))) == unnamed(p)
    start, target = point(preset="balanced"), point(path=TRIAL25)
    assert differing(start, target) == ["block", "layout", "stem", "attention", "dropblock", "head", "class_weights", "recipe"]
    only_head = flip(start, target, {"head"})
    assert only_head[0]["head"] == target[0]["head"]
    assert only_head[0]["stages"] == start[0]["stages"] and only_head[1] == start[1]


def test_stage_count_change_resizes_the_per_stage_decisions():
    start, target = point(preset="balanced"), point(preset="cbam")  # 4 stages vs cbam's
    n_target = len(target[0]["stages"])
    assert n_target != len(start[0]["stages"])
    mid = flip(start, target, {"layout"})
    assert len(mid[0]["stages"]) == n_target
    assert all(s["block"] == "residual" for s in mid[0]["stages"])  # blocks still FROM's, extended with the last
    assert [s["width"] for s in mid[0]["stages"]][:4] == [s["width"] for s in start[0]["stages"]]


# ------------------------------------------------------------------------------------- greedy
GAIN = {"attention": 5.0, "head": 3.0, "stem": -1.0, "dropblock": 0.5}


def synthetic(flipped: frozenset[str]) -> float:
    """Additive gains, plus an interaction: ``block`` is worth +10 only once ``layout`` is flipped (else -2)."""
    score = sum(GAIN.get(d, 0.0) for d in flipped)
    if "block" in flipped:
        score += 10.0 if "layout" in flipped else -2.0
    if "layout" in flipped:
        score += 1.0
    return score


def make_evaluate(calls: list[tuple[int, list[str]]], seeds=(0, 1, 2)):
    def evaluate(step, points):
        calls.append((step, [p.decision for p in points]))
        # per-seed noise shared by every point of a seed (paired): it cannot change the means' order
        return {p.key: {s: synthetic(p.flipped) + 0.7 * s for s in seeds} for p in points}

    return evaluate


def test_greedy_path_on_a_synthetic_objective_takes_the_known_best_order():
    decisions = ["block", "layout", "stem", "attention", "dropblock", "head"]
    calls: list = []
    res = greedy_path(decisions, make_evaluate(calls))
    # step 1: attention (+5) beats head (+3), layout (+1), dropblock, stem, block (-2); then head; then layout
    # (+1) beats dropblock (+0.5) and block (-2); then block (+12 with layout); then dropblock; stem last
    assert [p.decision for p in res.chosen] == [None, "attention", "head", "layout", "block", "dropblock", "stem"]
    assert res.complete and res.chosen[-1].flipped == frozenset(decisions)
    assert [len(c) for _, c in calls] == [1, 6, 5, 4, 3, 2, 1]
    assert sum(len(c) for _, c in calls) == trainings(len(decisions)) == 1 + 6 + 5 + 4 + 3 + 2 + 1


def test_greedy_skips_invalid_candidates_and_stops_when_interrupted():
    calls: list = []
    res = greedy_path(["attention", "head"], make_evaluate(calls),
                      invalid=lambda f: "head needs no attention" if "head" in f and "attention" not in f else None)
    assert [p.decision for p in res.chosen] == [None, "attention", "head"]
    assert res.invalid[1] == {"head": "head needs no attention"}
    assert calls[1] == (1, ["attention"])

    def stopping(step, points):
        if step == 2:
            raise PathInterrupted(2)
        return make_evaluate([])(step, points)

    res = greedy_path(["attention", "head", "stem"], stopping)
    assert not res.complete and res.interrupted == 2 and [p.decision for p in res.chosen] == [None, "attention"]

    with pytest.raises(PathError):
        greedy_path(["attention"], lambda step, points: {})


# ------------------------------------------------------------------------------------- endpoints and CLI
def test_search_trial_endpoint(tmp_path):
    arch, recipe = point(preset="baseline")
    (tmp_path / "study.yaml").write_text(to_yaml({"name": "s", "train": {"width_mult": 1.0}}))
    (tmp_path / "trials" / "7").mkdir(parents=True)
    (tmp_path / "trials" / "7" / "arch.yaml").write_text(to_yaml(arch))
    (tmp_path / "trials" / "7" / "recipe.yaml").write_text(to_yaml({"class_weights": "balanced", "lr": 0.01}))
    end = resolve_endpoint(f"{tmp_path}#7")
    assert end.spec.to_dict() == arch and end.recipe == {"class_weights": "balanced", "lr": 0.01}
    with pytest.raises(ConfigError, match="no .*trials/8/arch.yaml"):
        resolve_endpoint(f"{tmp_path}#8")
    (tmp_path / "study.yaml").write_text(to_yaml({"name": "s", "train": {"width_mult": 0.125}}))
    with pytest.raises(ConfigError, match="width_mult 0.125"):
        resolve_endpoint(f"{tmp_path}#7")
    with pytest.raises(ConfigError, match="neither a preset"):
        resolve_endpoint("no-such-thing")


def test_dry_run_lists_the_decisions_and_counts_the_trainings(tmp_path):
    from nasattn.cli.main import app

    res = CliRunner().invoke(app, ["ablate", "--path", "balanced", str(TRIAL25), "--seeds", "0,1,2", "--dry-run",
                                   "--out", str(tmp_path / "p")], terminal_width=200)
    assert res.exit_code == 0, res.output
    for name in ["block", "layout", "stem", "attention", "dropblock", "head", "class_weights", "recipe"]:
        assert re.search(rf"^[│ ]*{name}\s", res.output, re.M), name
    assert "widths" not in res.output.split("decisions FROM -> TO")[1].split("trainings")[0].split("│ recipe")[0].split()
    # 8 decisions: FROM + 8 + 7 + ... + 1 = 37 per seed, 111 for 3 seeds
    words = " ".join(res.output.split())  # the line wraps at the console's width, which a long checkout path moves
    assert "1 (FROM) + 8 + 7 + 6 + 5 + 4 + 3 + 2 + 1 = 37 trainings per seed; x 3 seeds = 111 trainings" in words
    assert not (tmp_path / "p").exists()


def test_bad_path_input_exits_2_without_traceback():
    from nasattn.cli.main import app

    runner = CliRunner()
    res = runner.invoke(app, ["ablate", "--path", "balanced", "nothing-here", "--dry-run"])
    assert res.exit_code == 2 and "Traceback" not in res.output and "neither a preset" in res.output
    res = runner.invoke(app, ["ablate", "--path", "balanced", "balanced", "--dry-run"])
    assert res.exit_code == 2 and "do not differ" in res.output
    res = runner.invoke(app, ["ablate", "--path", "balanced", "baseline", "--include", "se_only", "--dry-run"])
    assert res.exit_code == 2 and "--include does not apply" in res.output


# ------------------------------------------------------------------------------------- outputs
def test_path_outputs_pair_each_step_with_the_previous_point(tmp_path):
    import numpy as np
    import pandas as pd
    from scipy import stats

    from nasattn.ablation.path.greedy import PathPoint, PathResult
    from nasattn.ablation.path.run import plan_path, write_path_outputs
    from nasattn.ablation.study import load_ablation

    plan = plan_path(load_ablation(None, {}), resolve_endpoint("balanced"), resolve_endpoint(str(TRIAL25)))
    p0 = PathPoint(0, frozenset())
    p1a, p1b = PathPoint(1, frozenset({"head"}), "head"), PathPoint(1, frozenset({"stem"}), "stem")
    p2 = PathPoint(2, frozenset({"head", "stem"}), "stem")
    acc = {p0.key: [0.70, 0.74, 0.72], p1a.key: [0.75, 0.80, 0.76], p1b.key: [0.69, 0.70, 0.73],
           p2.key: [0.74, 0.81, 0.78]}
    walked = PathResult(chosen=[p0, p1a, p2], tried={0: [p0], 1: [p1a, p1b], 2: [p2]},
                        scores={k: dict(enumerate(v)) for k, v in acc.items()})
    rows = [{"step": p.step, "decision": p.decision or "(from)", "point": p.key, "variant": p.key, "seed": s,
             "status": "COMPLETE", "test_accuracy": acc[p.key][s], "val_accuracy": acc[p.key][s], "kappa": acc[p.key][s]}
            for p in (p0, p1a, p1b, p2) for s in range(3)]
    result = write_path_outputs(tmp_path, plan, walked, rows, report=False)
    summary = pd.read_csv(tmp_path / "path_summary.csv")
    assert list(summary["decision"]) == ["(from)", "head", "stem"]
    for i, (prev, cur) in enumerate([(p0, p1a), (p1a, p2)], start=1):
        d = np.array(acc[cur.key]) - np.array(acc[prev.key])
        assert summary.loc[i, "test_accuracy_diff"] == pytest.approx(d.mean())
        assert summary.loc[i, "test_accuracy_p"] == pytest.approx(stats.ttest_rel(acc[cur.key], acc[prev.key]).pvalue)
    raw = sorted(summary["test_accuracy_p"].dropna())
    assert summary["test_accuracy_p_adj"].dropna().max() == pytest.approx(min(1.0, max(2 * raw[0], raw[1])))  # Holm
    path_csv = pd.read_csv(tmp_path / "path.csv")
    assert len(path_csv) == 12 and path_csv.groupby("point")["chosen"].first().to_dict() == {
        p0.key: True, p1a.key: True, p1b.key: False, p2.key: True}
    assert not any(c.startswith("mcnemar") for c in summary.columns)
    (tmp_path / "path.json").write_text('{"from": "preset balanced", "to": "trial25", "seeds": [0, 1, 2]}')
    from nasattn.report import render_report

    html = render_report(tmp_path).read_text()
    assert 'id="fig-path"' in html and "tbl-path" in html
    assert ">+5.00<" in html  # step 1's contribution: mean of +5, +6, +4 points
    assert result.summary[1]["candidates"] == 2
