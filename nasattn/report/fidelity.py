"""The fidelity report: rank agreement of the cheap ranking (and of zero-cost predictors) with the higher budget."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from nasattn.presets import list_presets
from nasattn.report.html import Page, fmt_count, fmt_num, fmt_pct, is_number
from nasattn.schema import AGREEMENT_CSV, FIDELITY_CSV, FIDELITY_JSON, PAIRED_CSV, TrialStatus, fidelity_high, fidelity_low
from nasattn.stats import correlation


def _ci(row: pd.Series, method: str, kind: str = "ci") -> str:
    lo, hi = row.get(f"{method}_{kind}_low"), row.get(f"{method}_{kind}_high")
    if not (is_number(lo) and is_number(hi)):
        return "-"
    return f"[{float(lo):+.2f}, {float(hi):+.2f}]"


def _pct_points(v: Any) -> str:
    return "-" if not is_number(v) else f"{float(v) * 100:.2f}"


def agreement_table(agree: pd.DataFrame, top: int) -> pd.DataFrame:
    """The agreement rows formatted for the page: value, p and Fisher-z 95% CI per correlation (the bootstrap
    interval as a secondary column), top-k overlap and regret among the re-trained trials and over the search."""
    rows = []
    for _, r in agree.iterrows():
        row = {"predictor": r["predictor"], "n": int(r["n"]) if is_number(r.get("n")) else "-"}
        for method, label in (("spearman", "Spearman"), ("kendall", "Kendall")):
            row.update({label: fmt_num(r.get(method), 3), f"{label} 95% CI (Fisher z)": _ci(r, method),
                        f"{label} p": fmt_num(r.get(f"{method}_p"), 3),
                        f"{label} bootstrap CI (secondary)": _ci(r, method, "boot")})
        row.update({f"top-{top} overlap (re-trained)": fmt_pct(r.get(f"top{top}_overlap"), 0),
                    "regret, points (re-trained)": _pct_points(r.get("regret"))})
        if is_number(r.get("search_trials")):
            missing = int(r.get(f"top{top}_not_retrained") or 0)
            row[f"top-{top} overlap (whole search)"] = fmt_pct(r.get(f"top{top}_overlap_search"), 0) + (
                f" ({missing} not re-trained)" if missing else "")
            row["regret, points (whole search)"] = (_pct_points(r.get("regret_search"))
                                                    if is_number(r.get("regret_search")) else "not re-trained")
        row["note"] = r.get("note") if isinstance(r.get("note"), str) else ""
        rows.append(row)
    return pd.DataFrame(rows)


def agreement_sentences(agree: pd.DataFrame, top: int) -> list[str]:
    """The population of each agreement number, in words ("among the 9 re-trained", "over the 24 trials")."""
    out = []
    for _, r in agree.iterrows():
        if not str(r.get("predictor", "")).startswith("low_") or not is_number(r.get("n")):
            continue
        n = int(r["n"])
        text = (f"Among the {n} re-trained trials: Spearman {float(r['spearman']):.2f} (Fisher-z 95% CI "
                f"{_ci(r, 'spearman')}, {r.get('spearman_p_method') or 'asymptotic'} p = {float(r['spearman_p']):.2g}), "
                f"top-{top} overlap {fmt_pct(r.get(f'top{top}_overlap'), 0)}, regret {_pct_points(r.get('regret'))} points.")
        if is_number(r.get("search_trials")):
            missing = int(r.get(f"top{top}_not_retrained") or 0)
            regret = (f"{_pct_points(r['regret_search'])} points" if is_number(r.get("regret_search"))
                      else "unknown (the search's first choice was not re-trained)")
            text += (f" Over the whole search ({int(r['search_trials'])} trials ranked by the low budget): top-{top} "
                     f"overlap {fmt_pct(r.get(f'top{top}_overlap_search'), 0)} ({missing} of the search's top {top} "
                     f"not re-trained, counted as misses), regret {regret}.")
        if n < 10:
            text += (f" With {n} trials a rank correlation is known only roughly: the Fisher-z interval is wide "
                     "because the standard error of z grows as 1/sqrt(n - 3).")
        out.append(text)
    return out


def scatter(df: pd.DataFrame, metric: str, low_label: str, high_label: str):
    """Low-budget metric vs high-budget mean (error bars: std over seeds); presets marked and named."""
    import plotly.graph_objects as go  # lazy: plotly is a heavy optional package

    low, high, std = fidelity_low(metric), fidelity_high(metric, "mean"), fidelity_high(metric, "std")
    d = df[pd.to_numeric(df[low], errors="coerce").notna() & pd.to_numeric(df[high], errors="coerce").notna()]
    if d.empty:
        return None
    fig = go.Figure()

    is_preset = d["preset"].fillna("").astype(str).isin(list_presets())
    for mask, name, symbol, size in ((~is_preset, "searched trials", "circle", 9), (is_preset, "presets", "star", 16)):
        part = d[mask]
        if part.empty:
            continue
        err = pd.to_numeric(part.get(std), errors="coerce").fillna(0) * 100 if std in part else None
        fig.add_trace(go.Scatter(
            x=part[low] * 100, y=part[high] * 100, mode="markers+text" if name == "presets" else "markers", name=name,
            marker={"symbol": symbol, "size": size}, text=[p or f"trial {t}" for p, t in zip(part["preset"].fillna(""), part["trial"])],
            textposition="top center", error_y=None if err is None else {"type": "data", "array": err, "visible": True},
            hovertemplate="%{text}<br>low %{x:.2f}%<br>high %{y:.2f}%<extra></extra>",
        ))
    fig.update_layout(xaxis_title=f"{low_label} (%)", yaxis_title=f"{high_label} (%)", height=480,
                      margin={"l": 60, "r": 20, "t": 30, "b": 50}, legend={"orientation": "h"})
    return fig


def render_fidelity(folder: str | Path) -> Page:
    """The report page of a fidelity folder (fidelity.csv, agreement.csv, fidelity.json)."""
    d = Path(folder)
    info: dict[str, Any] = json.loads((d / FIDELITY_JSON).read_text()) if (d / FIDELITY_JSON).is_file() else {}
    df = pd.read_csv(d / FIDELITY_CSV, keep_default_na=False, na_values=[""])
    agreement = d / AGREEMENT_CSV
    agree = pd.read_csv(agreement) if agreement.is_file() and agreement.stat().st_size > 1 else pd.DataFrame()
    metric = info.get("metric", "val_accuracy")
    top = int(info.get("top", 3) or 3)
    hi_epochs = (info.get("high_recipe") or {}).get("epochs")
    low_label = f"{metric}, {info.get('low_epochs')} epochs x{info.get('low_width_mult')} width"
    high_label = f"{metric}, {hi_epochs} epochs x{info.get('high_width_mult')} width, mean of {len(info.get('seeds', []))} seed(s)"
    page = Page(f"nasattn fidelity: {info.get('study', d.name)}", "fidelity")
    page.header = {
        "search": info.get("search_dir"), "command": info.get("command"),
        "low budget": f"{info.get('low_epochs')} epochs, width x{info.get('low_width_mult')}, subset {info.get('low_subset') or 'all'}",
        "high budget": f"recipe {info.get('high_recipe')}, width x{info.get('high_width_mult')}, subset {info.get('high_subset') or 'all'}",
        "seeds": ", ".join(map(str, info.get("seeds", []))), "trials re-trained": len(df),
    }
    page.section("How well does the cheap ranking predict the higher budget?", "sec-agreement")
    page.text(
        "Rank correlation of each predictor with the high-budget mean (over its seeds) among the re-trained trials "
        "(Spearman, Kendall; 95% CI by Fisher z with the Bonett-Wright / Fieller standard errors; p: exact "
        "permutation p for n <= 10; the percentile bootstrap over trials as a secondary column, never with a bound "
        "at ±1). Top-k overlap: share of the predictor's k best that are among the k best at the high budget. "
        "Regret: best high-budget result minus the high-budget result of the predictor's first choice. Whole "
        "search: the low budget's ranking of every trial, a trial not re-trained counted as a miss. params and FLOPs "
        "rank larger networks first; zc_* are training-free scores at initialisation (higher ranks first)."
    )
    if len(info.get("seeds", [])) == 1:
        page.text("The high budget has one seed: each trial's high-budget value is one training run, and another "
                  "seed can reorder close trials.", "warn")
    page.table(agreement_table(agree, top) if not agree.empty else agree, "agreement")
    for sentence in agreement_sentences(agree, top) if not agree.empty else []:
        page.text(sentence)
    page.section("Low vs high budget", "sec-scatter")
    page.figure(scatter(df, metric, low_label, high_label), "fidelity-scatter",
                note="Stars: the paper's presets (enqueued as seed trials of the search). Error bars: std over seeds.")
    if (d / PAIRED_CSV).is_file():
        paired = pd.read_csv(d / PAIRED_CSV, keep_default_na=False, na_values=[""])
        base = info.get("base_preset", "balanced")
        page.section(f"Against the {base} preset at the higher budget", "sec-paired")
        page.text(f"Each re-trained trial minus the {base} preset's trial, paired on seeds, with the statistics of "
                  "`nasattn ablate`: test accuracy difference with its 95% t CI (spread between seeds) and two-level "
                  "bootstrap CI (seeds and test images), paired t-test p and its "
                  f"{paired['correction'].iloc[0] if 'correction' in paired.columns and len(paired) else 'holm'}-adjusted "
                  "value over the trials (test accuracy only), the exact sign-flip p, the sign count and the verdict. "
                  "Fewer than 3 seeds: not testable. Positive: the trial beats the preset.")
        pct = {c: fmt_pct for c in ("test_accuracy_mean", "base_test_accuracy_mean")}
        points = {c: (lambda v: "-" if not is_number(v) else f"{float(v) * 100:+.2f} points")
                  for c in ("test_accuracy_diff", "test_accuracy_diff_ci_low", "test_accuracy_diff_ci_high",
                            "boot_ci_low", "boot_ci_high", "test_accuracy_detectable")}
        pvals = {c: (lambda v: fmt_num(v, 3)) for c in ("test_accuracy_p", "test_accuracy_p_adj", "test_accuracy_perm_p",
                                                       "test_accuracy_effect_dz")}
        shown = paired[[c for c in ("trial", "preset", "group", "n", "base_n", "test_accuracy_mean", "base_test_accuracy_mean",
                                    *points, "test_accuracy_effect_dz", "test_accuracy_p", "test_accuracy_p_adj",
                                    "test_accuracy_perm_p", "test_accuracy_better", "verdict")
                        if c in paired.columns]]
        page.table(shown, "fidelity-paired", formats={**pct, **points, **pvals})
        if "mcnemar_per_run" in paired.columns:
            for _, r in paired.iterrows():
                if isinstance(r["mcnemar_per_run"], str) and r["mcnemar_per_run"]:
                    page.text(f"trial {r['trial']}: McNemar per run ({r['mcnemar_per_run']}).")
    page.section("Re-trained trials", "sec-trials")
    fmts = {c: fmt_pct for c in df.columns if c.startswith(("low_val", "low_test", "high_val", "high_test")) and not c.endswith("_std")}
    fmts.update({c: fmt_count for c in ("params", "flops") if c in df.columns})
    page.table(df, "fidelity-trials", formats=fmts)
    return page


# ------------------------------------------------------------------------ sections of the search report
def seed_recipe_note(study: dict[str, Any], trials: pd.DataFrame) -> str | None:
    """One sentence on which recipe the preset seed trials were trained with (None without presets)."""
    seeds = study.get("seeds") or {}
    presets = seeds.get("presets") or []
    if not presets:
        return None
    mode = seeds.get("recipe", "study")
    how = ("their own recipe (the preset file's optimiser, learning rate, schedule, class weights...; the study's "
           "epochs)" if mode == "own" else "the study's recipe (sampled and fixed values), not the presets' own")
    return f"Preset seed trials ({', '.join(presets)}) were trained with {how}: seeds.recipe = {mode}."


def first_epoch_note(trials: pd.DataFrame) -> str | None:
    """Median wall time to a trial's first epoch beside its median duration (None without the column)."""
    if "time_to_first_epoch_s" not in trials.columns:
        return None
    first = pd.to_numeric(trials["time_to_first_epoch_s"], errors="coerce").dropna()
    if first.empty:
        return None
    total = pd.to_numeric(trials.get("duration_s"), errors="coerce").dropna() if "duration_s" in trials.columns else pd.Series(dtype=float)
    text = (f"Wall time to the first epoch (data, build, training-free scores, one epoch and its validation): "
            f"median {first.median():.1f} s over {len(first)} trials")
    return text + (f"; median trial duration {total.median():.1f} s." if not total.empty else ".")


def zero_cost_table(trials: pd.DataFrame, metric: str, n_resamples: int = 1000) -> pd.DataFrame:
    """Spearman and Kendall (Fisher-z 95% CI; Spearman's bootstrap CI as a secondary column) of params, FLOPs
    and the training-free scores with ``metric``."""
    col = f"objective.{metric}" if f"objective.{metric}" in trials.columns else metric
    if col not in trials.columns:
        return pd.DataFrame()
    y = pd.to_numeric(trials[col], errors="coerce")
    rows = []
    for name in ("params", "flops", "zc_naswot", "zc_synflow", "zc_gradnorm"):
        if name not in trials.columns:
            continue
        x = pd.to_numeric(trials[name], errors="coerce")
        entry: dict[str, Any] = {"predictor": name}
        for method in ("spearman", "kendall"):
            c = correlation(x.tolist(), y.tolist(), method, n_resamples=n_resamples, ci=method == "spearman")
            entry.update({"n": c.n, method: c.value, f"{method}_p": c.p_value, f"{method}_ci_low": c.ci_low,
                          f"{method}_ci_high": c.ci_high, f"{method}_boot_low": c.boot_low,
                          f"{method}_boot_high": c.boot_high})
            if c.note:
                entry["note"] = c.note
        rows.append(entry)
    return pd.DataFrame(rows)


def add_search_sections(page: Page, trials: pd.DataFrame, study: dict[str, Any], modes: dict[str, str]) -> None:
    """For a search report: the seed trials' recipe, and the training-free scores' correlation with the metric."""
    note = seed_recipe_note(study, trials)
    if note:
        page.text(note)
    timing = first_epoch_note(trials)
    if timing:
        page.text(timing)
    metric = next(iter(modes), None)
    if metric is None or not any(c.startswith("zc_") or c in ("params", "flops") for c in trials.columns):
        return
    ok = trials[trials["state"] == TrialStatus.COMPLETE] if "state" in trials.columns else trials
    page.section("Training-free scores vs the search's metric", "search-zero-cost")
    page.text(f"Rank correlation with {metric} over the {len(ok)} complete trials (Spearman and Kendall with "
              "Fisher-z 95% intervals and exact permutation p-values up to 10 trials; Spearman's percentile bootstrap "
              "as a secondary column). zc_naswot, zc_synflow and zc_gradnorm are "
              "computed at initialisation on one batch, before "
              "training; a score that ranks the trials as well as training does would have saved the search's epochs. "
              "See `nasattn fidelity` for the same question against a higher budget.")
    table = zero_cost_table(ok, metric)
    if table.empty:
        page.text("No complete trial with these columns yet.", "warn")
        return
    page.table(agreement_table(table.assign(regret=None), 0).drop(columns=["top-0 overlap (re-trained)",
                                                                          "regret, points (re-trained)"]),
               "table-search-zero-cost")
