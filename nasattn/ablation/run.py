"""Running an ablation: every (variant, seed) is one Ray Tune trial; resumable; ablation.csv/json, report.

Output folder::

    OUT/ablation.json          base, command, variants {name: {arch, recipe, description}}, skipped, seeds, data
    OUT/ablation.csv           one row per (variant, seed, split_seed): variant, seed, split_seed, status, error, run_dir, metrics
    OUT/summary.csv            one row per variant: see nasattn.stats.study (means, CIs, paired
                               differences, adjusted p-values, McNemar)
    OUT/runs/<variant>/seed<k> the run folders (metrics.json, history.csv, arch.yaml, model.pt, DONE);
                               seed<k>-split<s> with split_seeds
    OUT/tune/                  Ray Tune's experiment (its checkpoints are what --resume continues from)
    OUT/trials.json            the trial configs of that experiment
    OUT/report.html            when nasattn.report is available
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nasattn.ablation.study import LoadedAblation
from nasattn.say import say
from nasattn.schema import (
    ABLATION_CSV, ABLATION_JSON, ABLATION_LEAD_COLUMNS, DONE_MARKER, EXPERIMENT, METRICS_FILE, RUNS_DIR, SUMMARY_CSV,
    TRIALS_JSON, VAL_ACCURACY_BEST, ExitCode, TrialStatus,
)
from nasattn.stats import analyze, DEFAULT_PRIMARY, verdict
from nasattn.config import ConfigError, NasattnError
from nasattn.tune.resources import preflight, start_ray, tune_storage
from nasattn.tune.trainable import read_error, scalar_metrics
from nasattn.interrupt import tune_interrupts
from nasattn.report import render_report_safely
from nasattn.report.predictions import predictions_from_run_dirs
from nasattn.rundir import is_run_content
from nasattn.tune import pending, result_rows, run_grid
from nasattn.tune.runner import disk_failure, unfinished_with_checkpoint

if TYPE_CHECKING:
    from rich.console import Console

log = logging.getLogger("nasattn.ablation")
LEAD_COLUMNS = ABLATION_LEAD_COLUMNS
METRIC_COLUMNS = (
    "test_accuracy", VAL_ACCURACY_BEST, "kappa", "macro_f1", "min_class_accuracy", "confidence_gap", "ece",
    "params", "flops", "train_seconds", "epochs_run",
)
_SKIP_METRICS = {"variant", "run_dir", "final", "epoch", "config", "trial_id", "status", "error", "path", "duration_s", "epochs"}


class AblationFailed(NasattnError, RuntimeError):
    """Every trial of the ablation failed; ``str()`` shows the first error."""

    exit_code = ExitCode.FAILED


@dataclass
class AblationResult:
    output: Path
    csv: Path
    json: Path
    summary_csv: Path
    report: Path | None = None
    report_error: str | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    summary: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0
    ray_start_s: float = 0.0
    experiment: str = EXPERIMENT
    interrupted: int | None = None  # the signal that stopped the ablation (SIGINT, SIGTERM), if any
    checkpointed: int = 0  # unfinished runs with a checkpoint to resume from




# ------------------------------------------------------------------------------------ configs
def run_dir_of(out: Path, variant: str, seed: int, split_seed: int | None = None) -> Path:
    """``OUT/runs/<variant>/seed<k>``, or ``seed<k>-split<s>`` for a repeated split."""
    name = f"seed{seed}" if split_seed is None else f"seed{seed}-split{split_seed}"
    return (out / RUNS_DIR / variant / name).resolve()


def trial_configs(loaded: LoadedAblation, plan: Any, out: Path, data: str | None) -> list[dict[str, Any]]:
    """One :func:`nasattn.tune.train_trial` config per (variant, seed, split_seed), variants in plan order.

    With ``split_seeds`` every variant's ``recipe.split_seed`` is set to each split seed in turn.
    """
    a = loaded.ablation
    configs = []
    for name, (spec, recipe) in plan.variants.items():
        for split in (a.split_seeds or [None]):
            rec = recipe.to_dict()
            if split is not None:
                rec["split_seed"] = int(split)
            configs += [trial_config(a, name, spec.to_dict(), rec, seed, out, data, split) for seed in a.seeds]
    return configs


def trial_config(a: Any, variant: str, arch: dict[str, Any], recipe: dict[str, Any], seed: int, out: Path,
                 data: str | None, split: int | None = None) -> dict[str, Any]:
    """The :func:`nasattn.tune.train_trial` config of one (variant, seed) under the ablation settings ``a``."""
    return {
        "arch": arch, "recipe": recipe, "data": data, "seed": int(seed),
        "device": a.device, "run_dir": str(run_dir_of(out, variant, seed, split)),
        "checkpoint_every": a.checkpoint_every, "width_mult": a.width_mult, "subset": a.subset,
        "max_steps_per_epoch": a.max_steps_per_epoch, "variant": variant,
        **({} if getattr(a, "zero_cost", True) else {"zero_cost_batch": 0}),  # off: no training-free scores
    }


def _label(cfg: dict[str, Any]) -> str:
    from nasattn.tune.progress import arch_summary  # lazy: pulls in ray and optuna, the heavy optional packages

    return f"{cfg['variant']} seed{cfg['seed']} | {arch_summary(cfg)}"


def _experiment_name(out: Path, configs: list[dict[str, Any]], resume: bool, retry_errors: bool, console: Any) -> tuple[str, bool]:
    """Which Tune experiment to run and whether to continue it from its checkpoints.

    A resume continues the last experiment (unfinished trials from their newest checkpoint, nothing
    unpickled; :func:`nasattn.tune.run_grid`) when its trial configs are the ones now asked for; when
    they changed (variants or seeds added, epochs changed, ...) or ``retry_errors``, a new experiment
    runs every config, and finished run folders (DONE) are re-reported rather than retrained.
    """
    saved_path = out / TRIALS_JSON
    if not resume or not saved_path.is_file():
        return EXPERIMENT, False
    saved = json.loads(saved_path.read_text())
    name = saved.get("experiment", EXPERIMENT)
    same = saved.get("configs") == json.loads(json.dumps(configs))
    if same and not retry_errors:
        return name, True
    k = 2
    while (out / f"{EXPERIMENT}-{k}").exists():
        k += 1
    why = "retrying failed trials" if same else "the variants or settings changed since the last run"
    say(console, f"[yellow]{why}: a new Tune experiment {EXPERIMENT}-{k}; finished runs are not retrained[/]")
    return f"{EXPERIMENT}-{k}", False


def prepare_data(loaded: LoadedAblation, console: Console | None = None) -> str | None:
    """Resolve the data source, fill the decoded cache at the base's input size and check the split, once."""
    from nasattn.engine.prepare import prepare_data as prepare  # lazy: keeps torch out of run-file parsing and the CLI's start

    spec, recipe = loaded.base()
    own_weights = "class_weights" in loaded.ablation.recipe  # the file's own, not a preset's (those adapt)
    data, line = prepare(loaded.resolved_data(), download=loaded.ablation.download, image_size=spec.input_size,
                         recipe=recipe.to_dict(), recipe_field="recipe.class_weights" if own_weights else None,
                         progress=console is not None)
    say(console, line)
    return data


# ------------------------------------------------------------------------------------ run
def check_output(out: Path, resume: bool, console: Console | None = None, what: str = "an ablation") -> None:
    """ConfigError when ``out`` is a file, or holds runs and ``resume`` is off; a note when there is nothing to resume."""

    if out.exists() and not out.is_dir():
        raise ConfigError(f"output {out} is a file, not a folder")
    if out.exists() and any(is_run_content(p) for p in out.iterdir()):  # the run folder's lock file aside
        if not resume:
            raise ConfigError(f"{out} already holds {what}; add --resume to continue it, or choose another --out")
    elif resume:
        say(console, f"[yellow]nothing to resume in {out}: starting a new {what.split()[-1]}[/]")


def train_grid(configs: list[dict[str, Any]], out: Path, name: str, res: Any, concurrency: int, *, restoring: bool,
               title: str, live: bool | None = None, storage: str | None = None) -> tuple[list[dict[str, Any]], Any, Any]:
    """Train ``configs`` as one Tune experiment ``out/name`` (or ``storage/name``: ``ray.storage``'s
    :func:`nasattn.tune.resources.tune_storage`) inside :func:`start_ray`, signals caught;
    returns (:func:`ablation_rows`, the ResultGrid, the interrupt record with ``signum``)."""
    from nasattn.tune.progress import GridLabel, GridRunDir, TrialTable  # lazy: pulls in ray and optuna, the heavy optional packages

    table = TrialTable(total=len(pending(configs)), concurrency=concurrency, title=title, live=live,
                       describe=GridLabel([_label(c) for c in configs]), run_dir=GridRunDir([c["run_dir"] for c in configs]))
    with tune_interrupts() as stop:
        grid = run_grid(
            configs, storage_path=storage or out, name=name, cpus_per_trial=res.cpus_per_trial,
            gpus_per_trial=res.gpus_per_trial, max_concurrent=concurrency, callbacks=[table], resume=restoring,
        )
    return ablation_rows(configs, result_rows(grid)), grid, stop


def run_ablation(
    loaded: LoadedAblation,
    *,
    resume: bool = False,
    retry_errors: bool = False,
    console: Console | None = None,
    live: bool | None = None,
    command: str | None = None,
) -> AblationResult:
    """Run (or resume) the ablation; returns where everything was written.

    Raises ConfigError for bad input found before the start, AblationFailed when every trial failed
    (ablation.csv is written first).
    """

    t0 = time.time()
    a = loaded.ablation
    out = loaded.output
    check_output(out, resume, console)
    plan = loaded.plan()
    for name, why in plan.skipped.items():
        say(console, f"skipped variant {name}: {why}")
    say(console, "variants: " + ", ".join(plan.variants))
    checkpoints = "checkpoint_every" if a.checkpoint_every else None
    # an unreachable cluster, too few resources, data a node cannot read: nothing written
    preflight(a.resources, a.ray, loaded.source, checkpoints, data=loaded.resolved_data())
    out.mkdir(parents=True, exist_ok=True)

    data = prepare_data(loaded, console)
    configs = trial_configs(loaded, plan, out, data)
    exp_name, restoring = _experiment_name(out, configs, resume, retry_errors, console)
    info = ablation_info(loaded, plan, data, command)
    (out / ABLATION_JSON).write_text(json.dumps(info, indent=2, default=str) + "\n")
    (out / TRIALS_JSON).write_text(json.dumps({"experiment": exp_name, "configs": configs}, indent=1) + "\n")

    res = a.resources
    grid, signum, ray_start_s = None, None, 0.0
    todo = pending(configs)
    if resume and not todo:  # every run finished (DONE): the outputs again, no Ray to start
        say(console, ("the run is" if len(configs) == 1 else f"all {len(configs)} runs are") + " finished: nothing to train")
        rows = ablation_rows(configs, [])
    else:
        with start_ray(res, a.ray, loaded.source, home=out, checkpoints=checkpoints) as ray_started:
            conc, ray_start_s = ray_started.concurrency, ray_started.start_seconds
            done = len(configs) - len(todo)
            splits = f" x {len(a.split_seeds)} splits" if a.split_seeds else ""
            shape = f"{len(plan.variants)} variants x {len(a.seeds)} seeds{splits}"
            say(console, f"{ray_started.summary}; {len(configs)} trials ({shape}), up to {conc} at once"
                          + (f"; {done} already finished" if done else "")
                          + (f"; continuing {out / exp_name} from its checkpoints" if restoring else ""))
            rows, grid, stop = train_grid(configs, out, exp_name, res, conc, restoring=restoring,
                                          storage=tune_storage(a.ray, out), title=f"nasattn ablate {a.name}", live=live)
        signum = stop.signum
        full = disk_failure(grid)
        if full is not None and signum is None:  # a full disk: stop here, the finished runs and the state kept
            raise full

    result = write_outputs(out, rows, list(plan.variants), console=console, report=a.report, correction=a.correction,
                           primary=a.primary_metric)
    result.ray_start_s = ray_start_s
    result.experiment = exp_name
    result.wall_s = time.time() - t0
    if signum is not None:
        result.interrupted = signum
        result.checkpointed = unfinished_with_checkpoint(grid)
        return result
    failed = result.counts.get(TrialStatus.ERROR, 0)
    if not result.counts.get(TrialStatus.COMPLETE) and failed == len(rows):
        first = next((r["error"] for r in rows if r.get("error")), "no trial finished")
        raise AblationFailed(f"every trial failed ({failed} of {len(rows)}); first error: {first}")
    unfinished = result.counts.get(TrialStatus.UNFINISHED, 0)
    if unfinished:
        say(console, f"[yellow]interrupted: {unfinished} of {len(rows)} runs did not finish; "
                      f"continue with: nasattn ablate ... --out {out} --resume[/]")
    return result


def ablation_info(loaded: LoadedAblation, plan: Any, data: str | None, command: str | None) -> dict[str, Any]:
    a = loaded.ablation
    return {
        "name": a.name,
        "description": a.description,
        "base": "base",
        "base_source": {"preset": a.base.preset} if a.base.preset else {"arch": a.base.arch},
        "command": command or "nasattn ablate",
        "source": loaded.source,
        "variants": {
            name: {"arch": spec.to_dict(), "recipe": recipe.to_dict(), "description": plan.descriptions.get(name, "")}
            for name, (spec, recipe) in plan.variants.items()
        },
        "skipped": dict(plan.skipped),
        "differences": dict(plan.differences),
        "seeds": list(a.seeds),
        "split_seeds": None if a.split_seeds is None else list(a.split_seeds),
        "correction": a.correction,
        "primary_metric": a.primary_metric,
        "data": data,
        "epochs": a.epochs,
        "width_mult": a.width_mult,
        "subset": a.subset,
        "max_steps_per_epoch": a.max_steps_per_epoch,
        "resources": a.resources.model_dump(),
        "output": str(loaded.output),
    }


# ------------------------------------------------------------------------------------ outputs
def _tune_metrics(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not k.startswith("config.") and k not in _SKIP_METRICS}


def ablation_rows(configs: list[dict[str, Any]], tune_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per config: lead columns, the paper's metrics, per-class accuracy, alpha, other scalars.

    Metrics come from the run's metrics.json when it exists (per-class accuracy by class name),
    otherwise from the Tune result.
    """
    by_index: dict[int, dict[str, Any]] = {}
    for r in tune_rows:
        idx = r.get("config.index")
        if idx is not None and not (isinstance(idx, float) and math.isnan(idx)):
            by_index[int(idx)] = r
    rows = []
    for i, cfg in enumerate(configs):
        run_dir = Path(cfg["run_dir"])
        tr = by_index.get(i)
        metrics = _run_metrics(run_dir, tr)
        status, error = _run_status(run_dir, tr)
        row: dict[str, Any] = {
            "variant": cfg["variant"], "seed": cfg["seed"], "split_seed": (cfg.get("recipe") or {}).get("split_seed"),
            "status": status, "error": error,
            "run_dir": str(run_dir) if run_dir.exists() else None,
        }
        for col in METRIC_COLUMNS:
            row[col] = metrics.get(col)
        for key in metrics:
            if key.startswith("per_class_accuracy/") or key.startswith("alpha/"):
                row[key] = metrics[key]
        for key, value in metrics.items():
            if key not in row and key not in _SKIP_METRICS and key != "seed":
                row[key] = value
        rows.append(row)
    return rows


def _run_metrics(run_dir: Path, tr: dict[str, Any] | None) -> dict[str, Any]:
    """The run's scalar metrics from its metrics.json, else from its Tune result (``tr``), else ``{}``."""
    from nasattn.engine import read_run  # torch-side floor: imported when the rows are collected

    metrics: dict[str, Any] = {}
    if (run_dir / METRICS_FILE).is_file():
        try:
            metrics = scalar_metrics(read_run(run_dir)["metrics"])
        except (OSError, ValueError) as e:
            log.warning("%s: unreadable %s (%s)", run_dir, METRICS_FILE, e)
    if not metrics and tr is not None:
        metrics = _tune_metrics(tr)
    return metrics


def _run_status(run_dir: Path, tr: dict[str, Any] | None) -> tuple[TrialStatus, str | None]:
    """``(status, error)``: complete (DONE written or Tune says so), error (with Tune's message) or unfinished."""
    if (run_dir / DONE_MARKER).is_file():
        return TrialStatus.COMPLETE, None
    if tr is not None and tr.get("status") == TrialStatus.ERROR:  # the run's own ERROR line names its node
        return TrialStatus.ERROR, read_error(run_dir) or tr.get("error")
    if tr is not None and tr.get("status") == TrialStatus.COMPLETE:
        return TrialStatus.COMPLETE, None
    return TrialStatus.UNFINISHED, None  # interrupted (Ctrl-C, a time limit) or never started: not an error of the variant


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    cols = list(LEAD_COLUMNS) + list(METRIC_COLUMNS)
    rest: list[str] = []
    for r in rows:
        rest += [c for c in r if c not in cols and c not in rest]
    per_class = [c for c in rest if c.startswith("per_class_accuracy/")]
    alpha = [c for c in rest if c.startswith("alpha/")]
    other = [c for c in rest if c not in per_class and c not in alpha]
    return cols + per_class + alpha + other


def summarize_variants(rows: list[dict[str, Any]], variants: list[str], correction: str = "holm",
                       primary: str = DEFAULT_PRIMARY) -> list[dict[str, Any]]:
    """summary.csv: one row per variant (:func:`nasattn.stats.analyze`, McNemar from the
    runs' predictions.csv)."""
    import pandas as pd


    df = pd.DataFrame(rows)
    if df.empty:
        return [{"variant": v, "n": 0} for v in variants]
    base = "base" if "base" in variants else None
    loader = predictions_from_run_dirs(df, lambda d: d if isinstance(d, str) and d else None)
    return analyze(df, variants, base, correction=correction, predictions=loader, primary=primary)


def write_outputs(out: Path, rows: list[dict[str, Any]], variants: list[str], *, console: Console | None = None,
                  report: bool = True, correction: str = "holm", primary: str = DEFAULT_PRIMARY) -> AblationResult:
    """ablation.csv, summary.csv, the summary table on the console, and report.html when possible."""
    import pandas as pd

    csv = out / ABLATION_CSV
    pd.DataFrame(rows, columns=_columns(rows)).to_csv(csv, index=False)
    summary = summarize_variants(rows, variants, correction, primary)
    summary_csv = out / SUMMARY_CSV
    pd.DataFrame(summary).to_csv(summary_csv, index=False)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    result = AblationResult(output=out, csv=csv, json=out / ABLATION_JSON, summary_csv=summary_csv, rows=rows,
                            summary=summary, counts=counts)
    if console is not None:
        print_summary(summary, console)
        failed = [r for r in rows if r["status"] == TrialStatus.ERROR]  # not UNFINISHED: interrupted, not failed
        for r in failed[:10]:
            say(console, f"[red]{r['variant']} seed{r['seed']} failed[/]: {r['error']}")
    if report:

        result.report, result.report_error = render_report_safely(out, warn=lambda msg: say(console, f"[yellow]{msg}[/]"))
    return result


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.2f}"


def print_summary(summary: list[dict[str, Any]], console: Console) -> None:
    """The summary table: test accuracy, paired difference to the base with its t CI, adjusted p, sign count and
    the verdict on the primary metric (:func:`nasattn.stats.verdict`)."""
    from rich.table import Table

    correction = next((s.get("correction") for s in summary if s.get("correction")), "none")
    primary = next((s.get("primary_metric") for s in summary if s.get("primary_metric")), DEFAULT_PRIMARY)
    table = Table(title=f"ablation summary (test accuracy over runs; verdict on {primary}, p adjusted: {correction})",
                  title_justify="left")
    for col in ("variant", "n", "test acc. %", "95% CI", "vs base (points)", "diff 95% CI", "p adj.", "runs better",
                "verdict"):
        table.add_column(col, justify="left" if col in ("variant", "verdict") else "right")
    for s in summary:
        mean, std = s.get("test_accuracy_mean"), s.get("test_accuracy_std")
        acc = _pct(mean) + ("" if std is None else f" +- {std * 100:.2f}")
        ci = "-" if s.get("test_accuracy_ci_low") is None else f"[{_pct(s['test_accuracy_ci_low'])}, {_pct(s['test_accuracy_ci_high'])}]"
        diff = "-" if s.get("test_accuracy_diff") is None else f"{s['test_accuracy_diff'] * 100:+.2f}"
        dci = "-" if s.get("test_accuracy_diff_ci_low") is None else \
            f"[{s['test_accuracy_diff_ci_low'] * 100:+.2f}, {s['test_accuracy_diff_ci_high'] * 100:+.2f}]"
        padj = "-" if s.get(f"{primary}_p_adj") is None else f"{s[f'{primary}_p_adj']:.3g}"
        better = "-" if s.get(f"{primary}_better") is None else f"{s[f'{primary}_better']}/{s.get(f'{primary}_n_pairs')}"
        n = str(s.get("n", 0)) + (" (<3)" if s.get("few_seeds") else "")
        table.add_row(s["variant"], n, acc, ci, diff, dci, padj, better, s.get("verdict") or verdict(s, primary))
    console.print(table)
    notes = [f"{s['variant']}: {s['test_accuracy_note']}" for s in summary if s.get("test_accuracy_note")]
    for note in notes:
        console.print(note, highlight=False, soft_wrap=True)
    covers = next((s.get("ci_covers") for s in summary if s.get("ci_covers")), None)
    if covers:
        console.print(f"CIs cover: {covers}", highlight=False, soft_wrap=True)
