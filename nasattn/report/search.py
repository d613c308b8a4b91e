"""The report of a search folder (trials.csv, study.yaml, the Optuna study at its storage URL, best/, trials/<number>/)."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from nasattn.config import safe_yaml
from nasattn.engine import read_run
from nasattn.report import figures
from nasattn.report.env import environment
from nasattn.report.fidelity import add_search_sections
from nasattn.report.html import Page, best_cells, fmt_count, fmt_num, fmt_pct, is_number
from nasattn.report.run import add_run_sections
from nasattn.schema import HISTORY_FILE, METRICS_FILE, RUN_JSON, STUDY_FILE, TRIALS_CSV, TrialStatus
from nasattn.study_rows import pareto_numbers, study_rows
from nasattn.study_storage import open_storage, storage_url

NATURAL_MODE = {"val_accuracy": "max", "test_accuracy": "max", "params": "min", "flops": "min", "latency_ms": "min"}
ACCURACY = ("val_accuracy", "test_accuracy", "min_class_accuracy")
COUNTS = ("params", "flops")
METRICS = ("val_accuracy", "test_accuracy", "kappa", "min_class_accuracy", "params", "flops", "layers",
           "latency_ms", "epochs", "duration_s")
OK_STATES = (TrialStatus.COMPLETE,)
MIN_TRIALS_FOR_IMPORTANCE = 10  # fewer complete trials: importances are noise, the chart is hidden
MAX_IMPORTANCE_BARS = 15
MAX_PARALLEL_AXES = 6


def read_study_yaml(folder: Path) -> tuple[dict[str, Any], str | None]:
    """The resolved study (``{}`` when missing or unreadable) and the source file named in its header."""
    path = folder / STUDY_FILE
    if not path.is_file():
        return {}, None
    text = path.read_text(encoding="utf-8", errors="replace")
    match = re.match(r"#\s*resolved study \(from (.+?)\)", text)
    try:
        data = safe_yaml(text, str(path)) or {}
    except Exception:  # noqa: BLE001 - a broken study.yaml still leaves trials.csv to report
        data = {}
    return (data if isinstance(data, dict) else {}), (match.group(1) if match else None)


def objective_modes(study: dict[str, Any], trials: pd.DataFrame) -> dict[str, str]:
    """``{metric: "max"|"min"}`` in objective order (study.yaml, else the objective.* columns)."""
    modes: dict[str, str] = {}
    for o in study.get("objectives") or []:
        metric = o.get("metric") if isinstance(o, dict) else str(o)
        mode = (o.get("mode") if isinstance(o, dict) else None) or NATURAL_MODE.get(metric, "max")
        modes[metric] = mode
    for c in trials.columns:
        if c.startswith("objective."):
            modes.setdefault(c[len("objective."):], NATURAL_MODE.get(c[len("objective."):], "max"))
    return modes


def study_name(study: dict[str, Any]) -> str | None:
    """The Optuna study name: ``study_name`` or ``name`` of study.yaml."""
    return study.get("study_name") or study.get("name")


def load_optuna_study(folder: Path, name: str | None, storage: str | None = None) -> Any | None:
    """The Optuna study at the run's storage (study.yaml's ``storage``: SQLite, PostgreSQL, journal;
    default ``folder/study.db``); the only study there when ``name`` is unknown; None when unreadable."""
    url = storage_url(storage, folder)
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).is_file():
        return None
    try:
        import optuna  # lazy: optuna is a heavy optional package

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        backend = open_storage(url)
        if name is None:
            summaries = optuna.get_all_study_summaries(storage=backend)
            if len(summaries) != 1:
                return None
            name = summaries[0].study_name
        return optuna.load_study(study_name=name, storage=backend)
    except Exception:  # noqa: BLE001 - a locked, unreachable or foreign storage: report from trials.csv only
        return None


def rows_from_study(st: Any, metrics: list[str]) -> pd.DataFrame:
    """trials.csv's rows rebuilt from an Optuna study (for a search interrupted before trials.csv)."""
    return pd.DataFrame(study_rows(st, metrics))


def load_trials(folder: Path, study: dict[str, Any], st: Any | None) -> pd.DataFrame:
    """trials.csv, else rows rebuilt from the Optuna study, else an empty frame."""
    path = folder / TRIALS_CSV
    if path.is_file():
        try:
            return pd.read_csv(path).copy()  # copy(): one block per dtype (read_csv leaves wide frames fragmented)
        except pd.errors.EmptyDataError:
            return pd.DataFrame()
    if st is not None:
        metrics = list(objective_modes(study, pd.DataFrame()))
        return rows_from_study(st, metrics or ["val_accuracy"])
    return pd.DataFrame()


def complete_rows(trials: pd.DataFrame, objective: str | None) -> pd.DataFrame:
    """Finished trials with a numeric first objective."""
    if trials.empty or "state" not in trials.columns:
        return trials.iloc[0:0]
    ok = trials[trials["state"].isin(OK_STATES)]
    if objective and objective in ok.columns:
        ok = ok[pd.to_numeric(ok[objective], errors="coerce").notna()]
    return ok


def _formats(columns: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for c in columns:
        base = c.split(".", 1)[-1]
        if base in ACCURACY:
            out[c] = fmt_pct
        elif base in COUNTS:
            out[c] = fmt_count
        elif base in ("duration_s", "latency_ms"):
            out[c] = lambda v: fmt_num(v, 3)
        elif base in ("number", "epochs", "layers"):
            out[c] = lambda v: str(int(v)) if is_number(v) else "-"
    return out


def _present(df: pd.DataFrame, cols: list[str]) -> list[str]:
    return [c for c in cols if c in df.columns and df[c].notna().any()]


def _sorted(df: pd.DataFrame, col: str, mode: str) -> pd.DataFrame:
    key = pd.to_numeric(df[col], errors="coerce")
    return df.loc[key.sort_values(ascending=mode == "min").index]


def add_overview(page: Page, trials: pd.DataFrame, study: dict[str, Any]) -> None:
    """Counts of trials by status and the study's settings."""
    page.section("Overview", "search-overview")
    if trials.empty:
        page.text("No trial has been recorded yet (empty or interrupted study).", "warn")
        return
    col = "status" if "status" in trials.columns and trials["status"].notna().any() else "state"
    counts = trials[col].fillna(trials.get("state", "")).value_counts().rename_axis("status").reset_index(name="trials")
    page.table(counts, "table-search-status")
    budget = study.get("budget") or {}
    if budget:
        page.text(f"budget: {budget.get('trials')} trials x {budget.get('epochs')} epochs; "
                  f"sampler: {(study.get('sampler') or {}).get('type')}; "
                  f"early stopping: {(study.get('early_stopping') or {}).get('type')}")


def add_best_trials(page: Page, ok: pd.DataFrame, modes: dict[str, str], params: list[str],
                    csv: Path | None = None) -> None:
    """The top trials by the first objective, with their metrics and parameters; ``csv``: the file with
    every column of every trial, linked under the table."""
    page.section("Best trials", "search-best")
    first = next(iter(modes), None)
    if ok.empty or first is None:
        page.text("No complete trial yet.", "warn")
        return
    obj = [f"objective.{m}" for m in modes]
    cols = _present(ok, ["number", "seed_point", *obj, *[m for m in METRICS if m not in modes], *params])
    top = _sorted(ok, f"objective.{first}", modes[first]).head(10)[cols].reset_index(drop=True)
    rules = {f"objective.{m}": modes[m] for m in modes}
    rules.update({"test_accuracy": "max", "params": "min", "flops": "min"})
    shown = [c for c in ("number", "seed_point", *obj, "test_accuracy", "params", "flops", "epochs") if c in cols]
    page.wide_table(top, "table-search-best", shown, csv=csv, formats=_formats(cols), best=best_cells(top, rules))


def history_figure(st: Any, index: int, metric: str) -> Any | None:
    """Optuna's optimization history of objective ``index`` (best-so-far line for one objective)."""
    import optuna  # lazy: optuna is a heavy optional package

    if not any(t.state == optuna.trial.TrialState.COMPLETE for t in st.get_trials(deepcopy=False)):
        return None
    target = (lambda t: t.values[index]) if len(st.directions) > 1 else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return optuna.visualization.plot_optimization_history(st, target=target, target_name=metric)


def add_history(page: Page, trials: pd.DataFrame, modes: dict[str, str], st: Any | None = None) -> None:
    """Objective per trial and the best-so-far line, for each objective (Optuna's plot when the study is readable)."""
    page.section("Optimization history", "search-history")
    for i, (m, mode) in enumerate(modes.items()):
        if st is not None and i < len(st.directions):
            fig = history_figure(st, i, m)
            if fig is not None:
                fig.update_layout(title=f"Optimization history: {m} ({mode})")
                if m in ACCURACY:
                    fig.update_yaxes(tickformat=".1%")
                page.figure(fig, "fig-search-history" if i == 0 else f"fig-search-history-{m}")
                continue
        c = f"objective.{m}"
        if c not in trials.columns or "number" not in trials.columns:
            continue
        labels = trials["seed_point"].fillna("").astype(str).tolist() if "seed_point" in trials.columns else None
        fig = figures.optimization_history(trials["number"].tolist(), pd.to_numeric(trials[c], errors="coerce").tolist(),
                                           mode, title=f"Optimization history: {m} ({mode})", yaxis=m, labels=labels)
        if fig is not None and m in ACCURACY:
            fig.update_yaxes(tickformat=".1%")
        page.figure(fig, "fig-search-history" if i == 0 else f"fig-search-history-{m}")
        if fig is None:
            page.text(f"{m}: no finished trial yet.", "warn")


def importances_of(st: Any | None, n_complete: int) -> tuple[dict[str, float], str | None]:
    """Optuna's parameter importances of the first objective, or ``({}, why not)``."""
    if st is None:
        return {}, "the Optuna study is missing or unreadable"
    if n_complete < MIN_TRIALS_FOR_IMPORTANCE:
        return {}, (f"only {n_complete} complete {'trial' if n_complete == 1 else 'trials'}; importances need at "
                    f"least {MIN_TRIALS_FOR_IMPORTANCE} to mean more than noise")
    try:
        import optuna  # lazy: optuna is a heavy optional package

        target = (lambda t: t.values[0]) if len(st.directions) > 1 else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return dict(optuna.importance.get_param_importances(st, target=target)), None
    except Exception as e:  # noqa: BLE001 - e.g. a single distinct value, conditional-only params
        return {}, f"{type(e).__name__}: {e}"


def add_importances(page: Page, st: Any | None, n_complete: int) -> dict[str, float]:
    """The parameter importance bars (guarded)."""
    page.section("Parameter importances", "search-importances")
    imp, why = importances_of(st, n_complete)
    if imp:
        import optuna  # lazy: optuna is a heavy optional package

        target = (lambda t: t.values[0]) if len(st.directions) > 1 else None
        top = sorted(imp, key=lambda k: -imp[k])[:MAX_IMPORTANCE_BARS]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fig = optuna.visualization.plot_param_importances(st, target=target, params=top)
        fig.update_layout(title="Parameter importances" + (f" ({len(top)} most important of {len(imp)})"
                                                           if len(top) < len(imp) else ""),
                          height=max(320, 26 * len(top) + 140))
        page.figure(fig, "fig-search-importances",
                    note=f"Computed by Optuna (fANOVA) from {n_complete} complete trials; with few trials they are rough.")
    else:
        page.text(f"Parameter importances not available: {why}.", "warn")
    return imp


def add_parallel(page: Page, ok: pd.DataFrame, params: list[str], first: str | None, imp: dict[str, float]) -> None:
    """Parallel coordinates of the (most important) parameters coloured by the first objective."""
    page.section("Parallel coordinates", "search-parallel")
    if imp:
        page.text(f"The {MAX_PARALLEL_AXES} most important parameters (by the importances above); all parameters "
                  "are in the best trials' table.")
    cols = [p for p in params if p in ok.columns and ok[p].notna().any()]
    if imp:
        cols.sort(key=lambda c: -imp.get(c[len("param."):], 0.0))
    cols = cols[:MAX_PARALLEL_AXES]
    fig = figures.parallel_coordinates(ok, cols, f"objective.{first}",
                                       title=f"Parameters of complete trials, coloured by {first}") if first else None
    page.figure(fig, "fig-search-parallel")
    if fig is None:
        page.text("No complete trial with parameters yet.", "warn")


def add_pareto(page: Page, ok: pd.DataFrame, modes: dict[str, str], st: Any | None = None) -> None:
    """The first objective against each other one, Optuna's Pareto front marked (multi-objective studies).

    The front is trials.csv's ``pareto`` column, else the study's ``best_trials``.
    """
    names = list(modes)
    if len(names) < 2:
        return
    page.section("Pareto front", "search-pareto")
    if "pareto" in ok.columns:
        front = ok["pareto"].astype(str).str.lower().isin(["true", "1"])
    else:
        numbers = pareto_numbers(st) if st is not None else set()
        front = ok["number"].isin(numbers) if "number" in ok.columns else pd.Series(False, index=ok.index)
    marked = ok.assign(pareto=front.tolist())
    for i, other in enumerate(names[1:]):
        x, y = f"objective.{other}", f"objective.{names[0]}"
        fig = figures.pareto_scatter(marked, x, y, front="pareto", title=f"Pareto front: {names[0]} vs {other}")
        page.figure(fig, "fig-search-pareto" if i == 0 else f"fig-search-pareto-{other}")
        if fig is None:
            page.text("No complete trial yet.", "warn")


def add_presets(page: Page, trials: pd.DataFrame, ok: pd.DataFrame, modes: dict[str, str],
                study: dict[str, Any] | None = None) -> None:
    """The best trial beside the enqueued preset trials (seed_point rows)."""
    page.section("Best trial vs the presets", "search-presets")
    study = study or {}
    first = next(iter(modes), None)
    seeds = trials[trials["seed_point"].notna() & (trials["seed_point"].astype(str) != "")] \
        if "seed_point" in trials.columns else trials.iloc[0:0]
    if ok.empty or first is None:
        page.text("No complete trial yet.", "warn")
        return
    best = _sorted(ok, f"objective.{first}", modes[first]).head(1).assign(role="best trial")
    seeds = seeds.assign(role="preset " + seeds["seed_point"].astype(str)) if not seeds.empty else seeds
    both = pd.concat([best, seeds], ignore_index=True)
    cols = _present(both, ["role", "number", "status", *[m for m in METRICS]])
    table = both[cols].reset_index(drop=True)
    page.table(table, "table-search-presets", formats=_formats(cols),
               best=best_cells(table, {"val_accuracy": "max", "test_accuracy": "max", "params": "min", "flops": "min"}))
    if seeds.empty:
        page.text("No preset was enqueued in this study (seeds.presets).")
    acc = [m for m in ("val_accuracy", "test_accuracy") if m in table.columns]
    if acc:
        metric = acc[0]  # val_accuracy: stopped trials have it, test_accuracy only the finished ones
        labels = [f"{r} (#{int(n)})" if is_number(n) else str(r) for r, n in zip(table["role"], table.get("number", [None] * len(table)))]
        kind = (study.get("early_stopping") or {}).get("type")
        rule = str(kind).upper() if kind and kind != "none" else "early stopping"
        notes = [stop_note(r, rule) for _, r in both.iterrows()]
        fig = figures.bars(labels, pd.to_numeric(table[metric], errors="coerce").tolist(),
                           title=f"{metric}: best trial vs presets", yaxis=metric, notes=notes)
        page.figure(fig, "fig-search-presets")


def stop_note(row: pd.Series, rule: str) -> str | None:
    """Why a trial has no final value or stopped early: ``stopped at epoch 1 by ASHA``, ``failed``; None if it finished."""
    status = str(row.get("status") or row.get("state") or "").upper()
    epochs = f" at epoch {int(row['epochs'])}" if is_number(row.get("epochs")) else ""
    by = row.get("stopped_by")
    if status == TrialStatus.STOPPED or (isinstance(by, str) and by):
        return f"stopped{epochs} by " + ("the time limit" if by == "time_limit" else rule)
    if status in (TrialStatus.FAILED, TrialStatus.ERROR):
        return "failed"
    if status in (TrialStatus.RUNNING, TrialStatus.INTERRUPTED, TrialStatus.PENDING):
        return status.lower()
    return None


def rung_ranks(st: Any, mode: str, epoch: int = 1) -> pd.DataFrame:
    """Every trial's objective after ``epoch`` (Optuna intermediate values) and its rank among them.

    Early stopping ends trials at different epochs; the value after the first epoch, which every
    trial reached, compares them on equal terms.
    """
    rows = [{"number": t.number, "seed_point": t.user_attrs.get("seed_point"), "value": t.intermediate_values[epoch],
             "epochs": max(t.intermediate_values), "last": t.intermediate_values[max(t.intermediate_values)]}
            for t in st.get_trials(deepcopy=False) if epoch in t.intermediate_values]
    df = pd.DataFrame(rows, columns=["number", "seed_point", "value", "epochs", "last"])
    df["rank"] = df["value"].rank(ascending=mode == "min", method="min")
    return df.sort_values("rank")


def add_rung_ranks(page: Page, st: Any | None, modes: dict[str, str]) -> None:
    """Where the presets rank among all trials after epoch 1 (single objective studies with epoch values)."""
    if st is None or len(modes) != 1:
        return
    metric, mode = next(iter(modes.items()))
    ranks = rung_ranks(st, mode)
    if ranks.empty:
        return
    n = len(ranks)
    shown = ranks[ranks["seed_point"].notna() | (ranks["rank"] == 1)].copy()
    shown["role"] = ["preset " + str(p) if isinstance(p, str) and p else "best after epoch 1" for p in shown["seed_point"]]
    shown["rank"] = [f"{int(r)} of {n}" for r in shown["rank"]]
    table = shown.rename(columns={"value": f"{metric} after epoch 1", "last": f"{metric} at its last epoch",
                                  "epochs": "epochs run"})[["role", "number", "rank", f"{metric} after epoch 1",
                                                            "epochs run", f"{metric} at its last epoch"]]
    page.text(f"Ranked by {metric} after epoch 1, which all {n} trials with an epoch reached "
              "(early stopping ends the others at different epochs):")
    fmt = fmt_pct if metric in ACCURACY else (lambda v: fmt_num(v, 4))
    page.table(table.reset_index(drop=True), "table-search-ranks",
               formats={"number": lambda v: str(int(v)), f"{metric} after epoch 1": fmt, f"{metric} at its last epoch": fmt,
                        "epochs run": lambda v: str(int(v))})


def add_all_trials(page: Page, trials: pd.DataFrame, modes: dict[str, str]) -> None:
    """Every trial, and the errors of failed ones."""
    page.section("All trials", "search-trials")
    cols = _present(trials, ["number", "state", "status", "seed_point", *[f"objective.{m}" for m in modes],
                             "test_accuracy", "params", "flops", "epochs", "duration_s", "tune_trial_id"])
    page.table(trials[cols].reset_index(drop=True) if cols else trials, "table-search-trials", formats=_formats(cols))
    if "error" in trials.columns:
        failed = trials[trials["error"].notna() & (trials["error"].astype(str) != "")]
        if not failed.empty:
            page.table(failed[_present(failed, ["number", "tune_trial_id", "status", "error"])].reset_index(drop=True),
                       "table-search-errors", title="Errors")


def render_search(folder: Path) -> Page:
    """The page of a search folder."""
    study, source = read_study_yaml(folder)
    st = load_optuna_study(folder, study_name(study), study.get("storage"))
    trials = load_trials(folder, study, st)
    modes = objective_modes(study, trials)
    first = next(iter(modes), None)
    ok = complete_rows(trials, f"objective.{first}" if first else None)
    params = [c for c in trials.columns if c.startswith("param.")]
    page = Page(f"nasattn search: {study.get('name') or folder.name}", "search")
    command = started_command(folder) or (f"nasattn search {source}" if source else None)
    page.header = {"folder": str(folder), "study": study_name(study), "data": data_source(study.get("data")),
                   "command": command, "study description": study.get("description"),
                   "objectives": ", ".join(f"{mode} {m}" for m, mode in modes.items()),
                   "trials": f"{len(ok)} complete of {len(trials)}"}
    add_overview(page, trials, study)
    add_best_trials(page, ok, modes, params, folder / TRIALS_CSV)
    add_presets(page, trials, ok, modes, study)
    add_rung_ranks(page, st, modes)
    add_search_sections(page, trials, study, modes)
    add_history(page, trials, modes, st)
    imp = add_importances(page, st, len(ok))
    add_parallel(page, ok, params, first, imp)
    add_pareto(page, ok, modes, st)
    add_all_trials(page, trials, modes)
    best = folder / "best"
    if (best / METRICS_FILE).is_file() and (best / HISTORY_FILE).is_file():
        try:
            page.section("Best trial's run", "search-best-run")
            page.text(f"The best trial's run folder ({best}): its metrics, curves and predictions.")
            add_run_sections(page, read_run(best), prefix="best", label="best", level=3)
        except Exception as e:  # noqa: BLE001 - the rest of the report stands
            page.text(f"best/ could not be read: {type(e).__name__}: {e}", "warn")
    page.footer = environment(command, data_source(study.get("data")))
    return page


def data_source(data: Any) -> str | None:
    """The data a search trained on, as one line (study.yaml's ``data``: a name, a path or a mapping)."""
    if isinstance(data, dict):
        return ", ".join(f"{k}: {v}" for k, v in data.items() if v not in (None, "", [], {})) or None
    return None if data in (None, "") else str(data)


def started_command(folder: Path) -> str | None:
    """The command line that started the search in ``folder`` (run.json), with its overrides; None if unknown."""
    try:
        return json.loads((folder / RUN_JSON).read_text()).get("command")
    except (OSError, ValueError):
        return None
