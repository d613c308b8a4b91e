"""``nasattn fidelity``: re-train a sample of a finished search's trials at a higher budget, through Ray.

Output folder (default ``SEARCH_DIR/fidelity``)::

    OUT/fidelity.json     the search, the sample, the higher budget (overrides, width, subset, seeds)
    OUT/fidelity.csv      one row per sampled trial: low-budget metric, high-budget metric per seed, mean
    OUT/agreement.csv     Spearman/Kendall (Fisher-z 95% CI, exact p for n <= 10, bootstrap as a secondary
                          column) of the high-budget mean with the low-budget metric, params, FLOPs and the
                          training-free scores; top-k overlap and regret (re-trained trials, whole search)
    OUT/paired.csv        every re-trained trial vs the base preset's (default balanced), paired on seeds,
                          with the statistics of ``nasattn ablate`` (difference and CIs, Holm-adjusted p,
                          verdict; McNemar per run on the test predictions)
    OUT/runs/trial<N>/seed<k>  the run folders (DONE marks a finished one)
    OUT/tune*/            Ray Tune's experiments (their checkpoints are what --resume continues from)
    OUT/report.html
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nasattn.say import say
from nasattn.config import ConfigError, deep_merge, NasattnError, read_yaml, resolve_data_source, validate as validate_model
from nasattn.presets import list_presets
from nasattn.engine.zero_cost import ZC_COLUMNS
from nasattn.stats import analyze, correlation, not_retrained, regret, summarize, top_k_overlap
from nasattn.tune.trainable import read_error, tune_error_line
from nasattn.schema import (
    AGREEMENT_CSV, DONE_MARKER, EXPERIMENT, FIDELITY_BASE_PRESET, FIDELITY_CSV, FIDELITY_DIR,
    FIDELITY_EPOCHS_FACTOR, FIDELITY_JSON, FIDELITY_RANDOM, FIDELITY_TOP, PAIRED_CSV, REPORT_FILE, RUNS_DIR, STUDY_FILE,
    TEST_ACCURACY, TRIALS_JSON, VAL_ACCURACY_LAST, ExitCode, TrialStatus, fidelity_high, fidelity_low,
)
from nasattn.data import load_dataset
from nasattn.recipe import Recipe
from nasattn.interrupt import tune_interrupts
from nasattn.report.fidelity import render_fidelity
from nasattn.report.predictions import predictions_from_run_dirs
from nasattn.tune import pending, run_grid, write_rows_csv
from nasattn.tune.resources import RayConfig, Resources, start_ray, tune_experiment, tune_storage
from nasattn.tune.runner import unfinished_with_checkpoint

if TYPE_CHECKING:
    from rich.console import Console

SETTABLE = ("recipe", "width_mult", "subset", "max_steps_per_epoch", "resources", "data")
BASELINES = ("low", "params", "flops", *ZC_COLUMNS)


class FidelityFailed(NasattnError, RuntimeError):
    """Every training of the fidelity study failed; ``str()`` counts them and shows the first error."""

    exit_code = ExitCode.FAILED


@dataclass
class Sampled:
    """One trial of the search chosen for re-training."""

    number: int
    tune_trial_id: str | None
    group: str  # top / random / preset
    seed_point: str | None
    low_status: str
    low_epochs: int | None
    low: float | None
    arch: dict[str, Any]
    recipe: dict[str, Any]
    static: dict[str, Any] = field(default_factory=dict)  # params, flops, zc_*


@dataclass
class FidelityPlan:
    search_dir: Path
    out: Path
    study: dict[str, Any]
    sample: list[Sampled]
    seeds: list[int]
    recipe: dict[str, Any]  # overrides of every sampled trial's recipe
    width_mult: float
    subset: float | None
    data: str | None
    resources: dict[str, Any]
    metric: str = VAL_ACCURACY_LAST
    max_steps_per_epoch: int | None = None
    top: int = FIDELITY_TOP
    low_epoch: int | None = None  # compare every trial's value after this epoch (None: its last)
    base_preset: str = FIDELITY_BASE_PRESET  # paired.csv compares every trial with this preset's trial
    search_low: dict[int, float] = field(default_factory=dict)  # the low-budget value of every trial of the search

    @property
    def low_epochs(self) -> int:
        return int(self.study.get("budget", {}).get("epochs", 0))


@dataclass
class FidelityResult:
    out: Path
    csv: Path
    agreement_csv: Path
    report: Path | None
    rows: list[dict[str, Any]]
    agreement: list[dict[str, Any]]
    counts: dict[str, int]
    wall_s: float = 0.0
    report_error: str | None = None
    interrupted: int | None = None  # the signal that stopped the study (SIGINT, SIGTERM), if any
    checkpointed: int = 0  # unfinished runs with a checkpoint to resume from


# ------------------------------------------------------------------------------------------ plan
def _read_study(search_dir: Path) -> dict[str, Any]:
    path = search_dir / STUDY_FILE
    if not path.is_file():
        raise ConfigError(f"{search_dir}: not a search folder (no {STUDY_FILE}); give the output folder of `nasattn search`")
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a study")
    return data


def _load_optuna(search_dir: Path, study: dict[str, Any]):
    import optuna  # lazy: optuna is a heavy optional package

    from nasattn.search.recorder import open_storage, storage_url  # lazy: pulls in ray and optuna, the heavy optional packages

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = storage_url(study.get("storage"), search_dir)
    name = study.get("study_name") or study.get("name") or "search"
    try:
        return optuna.load_study(study_name=name, storage=open_storage(url))
    except Exception as e:  # noqa: BLE001 - a missing database or study
        raise ConfigError(f"{search_dir}: cannot open the search's Optuna study {name!r}: {type(e).__name__}: {e}") from None


def _sampled(t: Any, group: str, metric: str, low_epoch: int | None = None) -> Sampled:
    a = t.user_attrs
    low = a.get(metric)
    if not isinstance(low, (int, float)) and t.intermediate_values:
        low = t.intermediate_values[max(t.intermediate_values)]
    epochs = a.get("epochs")
    if low_epoch is not None:  # every trial at the same epoch (early stopping ends some sooner)
        low = t.intermediate_values.get(low_epoch)
        epochs = low_epoch if low is not None else None
    static = {k: a.get(k) for k in ("params", "flops", *ZC_COLUMNS)}
    return Sampled(
        number=t.number, tune_trial_id=a.get("tune_trial_id"), group=group, seed_point=a.get("seed_point"),
        low_status=a.get("status") or t.state.name, low_epochs=epochs,
        low=float(low) if isinstance(low, (int, float)) else None,
        arch=json.loads(a.get("arch") or "null") or {}, recipe=json.loads(a.get("recipe") or "null") or {}, static=static,
    )


def search_values(trials: list[Any], metric: str = VAL_ACCURACY_LAST, low_epoch: int | None = None) -> dict[int, float]:
    """The low-budget value of every trial of the search that has one (the whole search's ranking): its
    value after ``low_epoch``, else its final ``metric`` when it finished (COMPLETE)."""
    import optuna  # lazy: optuna is a heavy optional package

    out: dict[int, float] = {}
    for t in trials:
        v = t.intermediate_values.get(low_epoch) if low_epoch is not None else (
            t.user_attrs.get(metric) if t.state == optuna.trial.TrialState.COMPLETE else None)
        if isinstance(v, (int, float)) and math.isfinite(v):
            out[t.number] = float(v)
    return out


def select_trials(trials: list[Any], top: int, n_random: int, presets: bool | list[str], seed: int = 0,
                  metric: str = VAL_ACCURACY_LAST, low_epoch: int | None = None) -> list[Sampled]:
    """The top ``top`` finished trials by ``metric``, ``n_random`` other finished ones, every preset trial.

    ``presets``: True for every preset, or the names to include. Finished: trained to the search's
    last epoch (COMPLETE). Preset trials are included whatever
    their state, as long as they reported a value. The low-budget value is the trial's last one, or
    its value after ``low_epoch`` (the search's intermediate values of val_accuracy).
    """
    import optuna  # lazy: optuna is a heavy optional package

    usable = [t for t in trials if t.user_attrs.get("arch")]
    finished = [t for t in usable if t.state == optuna.trial.TrialState.COMPLETE
                and isinstance(t.user_attrs.get(metric), (int, float))]
    finished.sort(key=lambda t: (-float(t.user_attrs[metric]), t.number))
    chosen: dict[int, Sampled] = {}
    for t in finished[:top]:
        chosen[t.number] = _sampled(t, "top", metric, low_epoch)
    rest = [t for t in finished if t.number not in chosen]
    for t in sorted(random.Random(seed).sample(rest, min(n_random, len(rest))), key=lambda t: t.number):
        chosen[t.number] = _sampled(t, "random", metric, low_epoch)
    wanted = list_presets() if presets is True else list(presets or [])
    if wanted:
        for t in usable:
            if t.user_attrs.get("seed_point") in wanted:
                s = _sampled(t, "preset", metric, low_epoch)
                if s.low is not None:
                    if t.number in chosen:
                        chosen[t.number].group += "+preset"
                    else:
                        chosen[t.number] = s
    return sorted(chosen.values(), key=lambda s: s.number)


def plan_fidelity(search_dir: str | Path, *, top: int = FIDELITY_TOP, n_random: int = FIDELITY_RANDOM,
                  presets: bool | list[str] = True,
                  seeds: list[int] | None = None, overrides: dict[str, Any] | None = None,
                  width_mult: float | None = None, subset: float | None = None, data: str | None = None,
                  out: str | Path | None = None, sample_seed: int = 0, metric: str = VAL_ACCURACY_LAST,
                  low_epoch: int | None = None) -> FidelityPlan:
    """Read a finished search and decide what to re-train at which budget (nothing runs).

    Without a ``recipe.epochs`` override the higher budget trains FIDELITY_EPOCHS_FACTOR (4) x the search's epochs.
    """

    search_dir = Path(search_dir).expanduser().resolve()
    if not search_dir.is_dir():
        raise ConfigError(f"{search_dir}: no such folder")
    study = _read_study(search_dir)
    overrides = dict(overrides or {})
    unknown = [k for k in overrides if k not in SETTABLE]
    if unknown:
        raise ConfigError(f"--set {unknown[0]}: unknown field; allowed: {', '.join(SETTABLE)} (e.g. recipe.epochs=12)")
    recipe = dict(overrides.get("recipe") or {})
    if not isinstance(overrides.get("recipe", {}), dict):
        raise ConfigError("--set recipe: give recipe fields, e.g. --set recipe.epochs=12")
    low_epochs = int(study.get("budget", {}).get("epochs", 1))
    recipe.setdefault("epochs", FIDELITY_EPOCHS_FACTOR * low_epochs)

    validate_model(Recipe, recipe, "--set recipe")
    if presets not in (True, False) and not set(presets) <= set(list_presets()):
        raise ConfigError(f"--presets {','.join(presets)}: allowed: all, none, or names among {', '.join(list_presets())}")
    if top < 0 or n_random < 0:
        raise ConfigError("--top and --random must be >= 0")
    train = study.get("train", {}) or {}
    wm = width_mult if width_mult is not None else overrides.get("width_mult", train.get("width_mult", 1.0))
    sub = subset if subset is not None else overrides.get("subset", study.get("subset"))
    if not (isinstance(wm, (int, float)) and wm > 0):
        raise ConfigError(f"--width-mult {wm!r}: must be > 0")
    if sub is not None and not (isinstance(sub, (int, float)) and 0 < sub <= 1):
        raise ConfigError(f"--subset {sub!r}: must be in (0, 1]")
    seeds = list(seeds if seeds is not None else [int(train.get("seed", 0))])
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds {seeds}: give distinct seeds, e.g. 0,1")
    st = _load_optuna(search_dir, study)
    if low_epoch is not None and (metric != VAL_ACCURACY_LAST or low_epoch < 1):
        raise ConfigError("--low-epoch N: an epoch >= 1 of the search, with --metric val_accuracy (the only per-epoch value)")
    trials = st.get_trials(deepcopy=False)
    sample = select_trials(trials, top, n_random, presets, sample_seed, metric, low_epoch)
    if not sample:
        raise ConfigError(f"{search_dir}: no finished trial to re-train (the search has no COMPLETE trial)")
    raw_data = data if data is not None else overrides.get("data", study.get("data"))
    resources = deep_merge(dict(study.get("resources") or {}), dict(overrides.get("resources") or {}))
    return FidelityPlan(
        search_dir=search_dir, out=Path(out).expanduser().resolve() if out else search_dir / FIDELITY_DIR, study=study,
        sample=sample, seeds=seeds, recipe=recipe, width_mult=float(wm), subset=sub,
        data=resolve_data_source(raw_data, Path.cwd()), resources=resources, metric=metric,
        max_steps_per_epoch=overrides.get("max_steps_per_epoch", study.get("budget", {}).get("max_steps_per_epoch")),
        top=top, low_epoch=low_epoch, search_low=search_values(trials, metric, low_epoch),
    )


def run_dir_of(out: Path, number: int, seed: int) -> Path:
    return (out / RUNS_DIR / f"trial{number}" / f"seed{seed}").resolve()


def trial_configs(plan: FidelityPlan) -> list[dict[str, Any]]:
    """One :func:`nasattn.tune.train_trial` config per (sampled trial, seed)."""
    train = plan.study.get("train", {}) or {}
    configs = []
    for s in plan.sample:
        for seed in plan.seeds:
            configs.append({
                "arch": s.arch, "recipe": {**s.recipe, **plan.recipe}, "data": plan.data, "seed": int(seed),
                "device": train.get("device", "auto"), "run_dir": str(run_dir_of(plan.out, s.number, seed)),
                "checkpoint_every": int(train.get("checkpoint_every", 1) or 0), "width_mult": plan.width_mult,
                "subset": plan.subset, "max_steps_per_epoch": plan.max_steps_per_epoch,
                "trial": s.number,
            })
    return configs


# ------------------------------------------------------------------------------------------- run


def plan_info(plan: FidelityPlan, command: str | None = None) -> dict[str, Any]:
    return {
        "command": command or "nasattn fidelity", "search_dir": str(plan.search_dir), "study": plan.study.get("name"),
        "metric": plan.metric, "low_epochs": plan.low_epoch or plan.low_epochs, "low_epoch": plan.low_epoch,
        "low_width_mult": (plan.study.get("train") or {}).get("width_mult", 1.0), "low_subset": plan.study.get("subset"),
        "high_recipe": plan.recipe, "high_width_mult": plan.width_mult, "high_subset": plan.subset,
        "seeds": plan.seeds, "data": plan.data, "top": plan.top, "base_preset": plan.base_preset,
        "sample": [{"trial": s.number, "group": s.group, "seed_point": s.seed_point} for s in plan.sample],
    }


def run_fidelity(plan: FidelityPlan, *, resume: bool = False, console: Console | None = None, live: bool | None = None,
                 command: str | None = None, reuse: Path | None = None) -> FidelityResult:
    """Train every (sampled trial, seed) at the higher budget (resumable), then write the outputs.

    ``resume`` continues the last Tune experiment when the configs are unchanged (unfinished trials
    continue from their checkpoints), then runs whatever still has no finished run folder. ``reuse``: a
    fidelity folder whose finished runs of identical configs are copied instead of re-trained. A
    SIGINT/SIGTERM during training stops Tune gracefully: the outputs are written and
    ``result.interrupted`` says which signal. Raises :class:`FidelityFailed` (after writing the
    outputs) when no training finished.
    """

    t0 = time.time()
    out = plan.out
    configs = trial_configs(plan)
    saved = out / TRIALS_JSON
    if saved.is_file() and not resume:
        raise ConfigError(f"{out} already holds a fidelity study; add --resume to continue it, or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    previous = json.loads(saved.read_text()) if saved.is_file() else {}
    experiments = list(previous.get("experiments", []))
    same = previous.get("configs") == json.loads(json.dumps(configs))
    (out / FIDELITY_JSON).write_text(json.dumps(plan_info(plan, command), indent=2, default=str) + "\n")

    def save() -> None:
        saved.write_text(json.dumps({"experiments": experiments, "configs": configs}, indent=1) + "\n")

    if reuse is not None:
        copied = reuse_finished_runs(configs, Path(reuse))
        say(console, f"reused {copied} finished run(s) of the same trial, seed and budget from {reuse}")
    res = validate_model(Resources, plan.resources, "resources")
    ray_cfg = validate_model(RayConfig, (plan.study.get("ray") or {}), "ray")
    todo = pending(configs)
    signum, checkpointed, grid = None, 0, []
    if todo:

        load_dataset(plan.data, progress=console is not None)  # fill the decoded cache once
        with start_ray(res, ray_cfg, "fidelity", home=out, checkpoints=_checkpoints(configs), data=plan.data) as ray_started, \
                tune_interrupts() as stop:
            conc = ray_started.concurrency
            say(console, f"{ray_started.summary}; {len(todo)} of {len(configs)} runs to train, up to {conc} at once")
            if resume and same and experiments and run_grid_restorable(tune_experiment(ray_cfg, out, experiments[-1])):
                say(console, f"continuing {out / experiments[-1]} from its checkpoints")
                grid = _grid(configs, tune_storage(ray_cfg, out), experiments[-1], res, conc, True, live)
                todo = pending(configs)
            if todo and stop.signum is None:
                name = EXPERIMENT if not experiments else f"{EXPERIMENT}-{len(experiments) + 1}"
                experiments.append(name)
                save()
                grid = _grid([configs[i] for i in todo], tune_storage(ray_cfg, out), name, res, conc, False, live)
            signum = stop.signum
            checkpointed = unfinished_with_checkpoint(grid) if signum is not None else 0
    save()
    rows = fidelity_rows(plan, configs)
    result = write_outputs(plan, rows, console=console, wall_s=time.time() - t0)
    result.interrupted, result.checkpointed = signum, checkpointed
    if signum is None and not result.counts["finished"]:
        n = len(configs)
        raise FidelityFailed(f"every training failed ({n} of {n}); first error: {first_error(configs, grid)}; "
                             f"wrote {result.csv}")
    return result


def _checkpoints(configs: list[dict[str, Any]]) -> str | None:
    """The setting that turns checkpoints on (named in a refusal), None when no run checkpoints."""
    return "train.checkpoint_every" if any(c.get("checkpoint_every") for c in configs) else None


def first_error(configs: list[dict[str, Any]], grid: Any = ()) -> str:
    """The first run's ERROR file text (``ExcType: message (on node ...)``, sent home from another node), else
    the first exception Tune kept for a trial of ``grid`` (a ResultGrid), else a pointer to Tune's trial logs."""
    written = next((e for c in configs if (e := read_error(c["run_dir"]))), None)
    if written:
        return written
    for result in grid:
        if result.error is not None:
            return tune_error_line(result.error)[:2000]
    return "no run wrote an error (see the Tune trial folders)"


def run_grid_restorable(path: Path | str) -> bool:
    """An earlier Tune experiment folder whose trials' checkpoints a resume can continue from (on a storage URI:
    assumed; a resume that finds no checkpoint there trains from the start)."""
    return isinstance(path, str) or path.is_dir()


def _grid(configs: list[dict[str, Any]], storage: str, name: str, res: Any, conc: int, resume: bool, live: bool | None) -> Any:
    """Run ``configs`` as one Tune experiment ``storage/name`` under a live table; returns the ResultGrid."""
    from nasattn.tune.progress import GridLabel, GridRunDir, TrialTable  # lazy: pulls in ray and optuna, the heavy optional packages

    table = TrialTable(total=len(pending(configs)), concurrency=conc, title="nasattn fidelity", live=live,
                       describe=GridLabel([f"trial{c['trial']} seed{c['seed']}" for c in configs]),
                       run_dir=GridRunDir([c["run_dir"] for c in configs]))
    return run_grid(configs, storage_path=storage, name=name, cpus_per_trial=res.cpus_per_trial,
             gpus_per_trial=res.gpus_per_trial, max_concurrent=conc, callbacks=[table], resume=resume)


# --------------------------------------------------------------------------------------- outputs
def _finished(run_dir: Path) -> dict[str, Any] | None:
    done = run_dir / DONE_MARKER
    if not done.is_file():
        return None
    try:
        return json.loads(done.read_text())
    except ValueError:
        return None


def fidelity_rows(plan: FidelityPlan, configs: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One row per sampled trial: the low-budget metric and its high-budget value per seed, mean and std."""
    rows = []
    for s in plan.sample:
        row: dict[str, Any] = {
            "trial": s.number, "tune_trial_id": s.tune_trial_id, "group": s.group, "preset": s.seed_point or "",
            "low_status": s.low_status, "low_epochs": s.low_epochs, fidelity_low(plan.metric): s.low,
        }
        highs, tests = [], []
        for seed in plan.seeds:
            final = _finished(run_dir_of(plan.out, s.number, seed)) or {}
            v, t = final.get(plan.metric), final.get(TEST_ACCURACY)
            row[fidelity_high(plan.metric, int(seed))] = v
            if plan.metric != TEST_ACCURACY:
                row[fidelity_high(TEST_ACCURACY, int(seed))] = t
            highs.append(v if isinstance(v, (int, float)) else math.nan)
            tests.append(t if isinstance(t, (int, float)) else math.nan)
        high = summarize(highs)  # the mean over the seeds that finished: what the rank claims compare
        row["high_n"] = high.n
        row[fidelity_high(plan.metric, "mean")] = high.mean
        row[fidelity_high(plan.metric, "std")] = high.std
        row[fidelity_high(TEST_ACCURACY, "mean")] = summarize(tests).mean
        for k, v in s.static.items():
            row[k] = v
        rows.append(row)
    return rows


def agreement(rows: list[dict[str, Any]], metric: str = VAL_ACCURACY_LAST, top: int = FIDELITY_TOP,
              n_resamples: int = 2000, search_low: dict[int, float] | None = None) -> list[dict[str, Any]]:
    """For the low-budget metric, params, FLOPs and each training-free score: how it ranks the high-budget mean.

    Columns: predictor, n, spearman/kendall (+ exact p for n <= 10, Fisher-z CI, secondary bootstrap CI),
    top-k overlap and regret among the re-trained trials; for the low-budget metric with ``search_low``
    (every trial of the search), also over the whole search: ``top{k}_overlap_search`` (a trial of the
    search's top k that was not re-trained counts as a miss; ``top{k}_not_retrained`` says how many) and
    ``regret_search`` (NaN when the search's first choice was not re-trained).
    """
    high = [_num(r.get(fidelity_high(metric, "mean"))) for r in rows]
    out = []
    for name in BASELINES:
        col = fidelity_low(metric) if name == "low" else name
        x = [_num(r.get(col)) for r in rows]
        if not any(math.isfinite(v) for v in x):
            continue
        entry: dict[str, Any] = {"predictor": col}
        for method in ("spearman", "kendall"):
            c = correlation(x, high, method, n_resamples=n_resamples)
            entry["n"] = c.n
            entry.update({method: c.value, f"{method}_p": c.p_value, f"{method}_p_method": c.p_method,
                          f"{method}_ci_low": c.ci_low, f"{method}_ci_high": c.ci_high,
                          f"{method}_boot_low": c.boot_low, f"{method}_boot_high": c.boot_high,
                          f"{method}_boot_dropped": c.dropped})
            if c.note:
                entry["note"] = c.note
        entry[f"top{top}_overlap"] = top_k_overlap(x, high, top)
        entry["regret"] = regret(x, high)
        if name == "low" and search_low:
            by_trial = {int(r["trial"]): h for r, h in zip(rows, high)}
            xs = list(search_low.values())
            hs = [by_trial.get(t, math.nan) for t in search_low]
            entry.update({"search_trials": len(xs), f"top{top}_overlap_search": top_k_overlap(xs, hs, top),
                          f"top{top}_not_retrained": not_retrained(xs, hs, top), "regret_search": regret(xs, hs)})
        out.append(entry)
    return out


def paired_vs_preset(plan: FidelityPlan, rows: list[dict[str, Any]], correction: str = "holm") -> list[dict[str, Any]]:
    """Every re-trained trial against the ``plan.base_preset`` trial at the higher budget, as ``nasattn ablate``.

    One row per other trial with the columns of the ablation's summary (:func:`nasattn.stats.analyze`
    over the finished runs, paired on seeds): test accuracy and kappa mean/CI, paired difference with its
    95% CIs (t and two-level bootstrap), the ``correction``-adjusted p of the primary metric over the
    trials, the verdict sentence, and McNemar per run on the test predictions. Empty when the
    base preset was not re-trained.
    """
    base_row = next((r for r in rows if r.get("preset") == plan.base_preset), None)
    if base_row is None:
        return []

    def label(r: dict[str, Any]) -> str:
        return f"trial{r['trial']}" + (f" ({r['preset']})" if r.get("preset") else "")

    runs = [run_record(run_dir_of(plan.out, int(r["trial"]), seed), label(r), seed) for r in rows for seed in plan.seeds]
    others = [r for r in rows if r is not base_row]
    table = analyze_runs([r for r in runs if r is not None], [label(base_row), *(label(r) for r in others)],
                         label(base_row), correction)
    base_stats = table.get(label(base_row), {})
    out = []
    for r in others:
        s = {k: v for k, v in table.get(label(r), {"n": 0}).items() if k != "variant"}
        out.append({"trial": r["trial"], "preset": r.get("preset", ""), "group": r.get("group"), "base": plan.base_preset,
                    "base_trial": base_row["trial"], "base_n": base_stats.get("n", 0),
                    "base_test_accuracy_mean": base_stats.get("test_accuracy_mean"), **s})
    return out


def run_record(run_dir: Path, variant: str, seed: int) -> dict[str, Any] | None:
    """A finished run folder as a row of :func:`analyze_runs` (None while it has no DONE marker)."""
    final = _finished(run_dir)
    if final is None:
        return None
    return {"variant": variant, "seed": int(seed), "status": TrialStatus.COMPLETE, "run_dir": str(run_dir),
            **{k: final.get(k) for k in (TEST_ACCURACY, "kappa", "n_test")}}


def analyze_runs(runs: list[dict[str, Any]], variants: list[str], base: str,
                 correction: str = "holm") -> dict[str, dict[str, Any]]:
    """:func:`nasattn.stats.analyze` of :func:`run_record` rows (McNemar from each run's
    predictions.csv), by variant; empty without runs."""
    import pandas as pd


    if not runs:
        return {}
    df = pd.DataFrame(runs)
    return {s["variant"]: s for s in analyze(df, variants, base, correction=correction,
                                              predictions=predictions_from_run_dirs(df, lambda d: d or None))}


def reuse_finished_runs(configs: list[dict[str, Any]], source: Path) -> int:
    """Copy the finished runs of identical configs (same trial, seed, architecture and budget) from another
    fidelity folder into this one's run folders; returns how many were copied.

    Lets a fidelity study grow (e.g. to more seeds in a new folder) without re-training what another
    one already trained. A run is taken only when its config, all but the folder, is equal.
    """
    import shutil

    saved = source / TRIALS_JSON
    if not saved.is_file():
        raise ConfigError(f"--reuse {source}: not a fidelity folder ({TRIALS_JSON} missing)")

    def key(c: dict[str, Any]) -> str:
        return json.dumps({k: v for k, v in json.loads(json.dumps(c, default=str)).items() if k != "run_dir"}, sort_keys=True)

    theirs = {key(c) for c in json.loads(saved.read_text()).get("configs", [])}
    copied = 0
    for c in configs:
        dst = Path(c["run_dir"])
        src = run_dir_of(source, int(c["trial"]), int(c["seed"]))
        if (dst / DONE_MARKER).is_file() or key(c) not in theirs or _finished(src) is None or src == dst:
            continue
        if dst.exists():
            shutil.rmtree(dst)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(src, dst)
        copied += 1
    return copied


def _num(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f


def write_outputs(plan: FidelityPlan, rows: list[dict[str, Any]], *, console: Console | None = None, wall_s: float = 0.0,
                  report: bool = True, n_resamples: int = 2000) -> FidelityResult:
    """fidelity.csv, agreement.csv and report.html."""

    csv = write_rows_csv(rows, plan.out / FIDELITY_CSV)
    agree = agreement(rows, plan.metric, plan.top, n_resamples, plan.search_low)
    if len(plan.seeds) < 2:
        say(console, f"[yellow]the high budget has one seed ({plan.seeds[0]}): the rank correlations compare against "
                     "one training run per trial; a second seed can move them (use --seeds 0,1,2)[/]")
    agree_csv = write_rows_csv(agree, plan.out / AGREEMENT_CSV)
    paired = paired_vs_preset(plan, rows)
    if paired:
        write_rows_csv(paired, plan.out / PAIRED_CSV)
    counts = {"finished": sum(1 for r in rows for s in plan.seeds if r.get(fidelity_high(plan.metric, int(s))) is not None)}
    counts["missing"] = len(rows) * len(plan.seeds) - counts["finished"]
    result = FidelityResult(out=plan.out, csv=csv, agreement_csv=agree_csv, report=None, rows=rows, agreement=agree,
                            counts=counts, wall_s=wall_s)
    if report:
        try:

            result.report = render_fidelity(plan.out).write(plan.out / REPORT_FILE)
        except Exception as e:  # noqa: BLE001 - the CSVs stand without their report
            result.report_error = f"report failed: {type(e).__name__}: {e}"
            say(console, f"[yellow]{result.report_error}[/]")
    return result
