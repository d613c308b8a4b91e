"""A live terminal table of trials (a Ray Tune callback), quiet one-liners when not on a terminal."""

from __future__ import annotations

import time
from typing import Any, Callable

from ray.tune import Callback

from nasattn.say import make_console
from nasattn.schema import VAL_ACCURACY_LAST, TrialStatus
from nasattn.spec import arch_summary
from nasattn.tune.trainable import read_error

_ENDED = (TrialStatus.DONE, TrialStatus.STOPPED, TrialStatus.ERROR)  # the live table's finished rows


def trial_label(trial: Any) -> str:
    """The id a user follows from the table to the folder and the CSV: a search trial's Optuna number
    (``#3``: ``trials/3``, trials.csv's ``number``) with its preset when it is a seed trial (``#0 baseline``),
    else Ray Tune's trial id."""
    optuna = (getattr(trial, "config", None) or {}).get("optuna") or {}
    number, preset = optuna.get("number"), optuna.get("seed_point")
    if number is None:
        return str(trial.trial_id)
    return f"#{number} {preset}" if preset else f"#{number}"


def _fmt_s(seconds: float | None) -> str:
    if seconds is None or seconds != seconds:
        return "?"
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else f"{seconds // 60}:{seconds % 60:02d}"


def grid_entry(values: list[Any], config: dict[str, Any]) -> Any:
    """The entry of ``values`` for a grid trial (whose Tune config is only ``{"index": i}``), None without one."""
    try:
        return values[int(config["index"])]
    except (KeyError, ValueError, TypeError, IndexError):
        return None


class GridLabel:
    """Names a grid trial for the live table (its config when it has no index); picklable."""

    def __init__(self, labels: list[str]) -> None:
        self.labels = labels

    def __call__(self, config: dict[str, Any]) -> str:
        found = grid_entry(self.labels, config)
        return str(config) if found is None else found


class GridRunDir:
    """A grid trial's run folder, None when it has none; picklable."""

    def __init__(self, run_dirs: list[str]) -> None:
        self.run_dirs = run_dirs

    def __call__(self, config: dict[str, Any]) -> str | None:
        return grid_entry(self.run_dirs, config)


def own_run_dir(config: dict[str, Any]) -> str | None:
    """A search trial's run folder: in its own config."""
    return config.get("run_dir")


class TrialTable(Callback):
    """Running and finished trials, their key choices, current and best ``metric``, time left.

    On a terminal it redraws a rich table in place (as wide as the terminal); otherwise (logs, CI, a pipe)
    it prints one plain line per trial event: started, each reported epoch, finished.
    """

    def __init__(
        self,
        total: int,
        metric: str = VAL_ACCURACY_LAST,
        describe: Callable[[dict[str, Any]], str] = arch_summary,
        concurrency: int = 1,
        time_budget_s: float | None = None,
        title: str = "trials",
        max_rows: int = 12,
        live: bool | None = None,
        run_dir: Callable[[dict[str, Any]], str | None] = own_run_dir,
    ) -> None:
        self.run_dir = run_dir
        self.total = total
        self.metric = metric
        self.describe = describe
        self.concurrency = max(1, concurrency)
        self.time_budget_s = time_budget_s
        self.title = title
        self.max_rows = max_rows
        self.want_live = live
        self.start = time.time()
        self.rows: dict[str, dict[str, Any]] = {}
        self.best: float | None = None
        self._live = None
        self._console = None

    # Tune pickles callbacks with the experiment state: the rich objects stay behind.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_live"] = None
        state["_console"] = None
        return state

    def get_state(self) -> dict[str, Any]:
        return {"rows": self.rows, "best": self.best}

    def set_state(self, state: dict[str, Any]) -> None:
        self.rows = state.get("rows", {})
        self.best = state.get("best")

    # ------------------------------------------------------------------ events
    def setup(self, **info: Any) -> None:
        self.start = time.time()
        self._console = make_console()
        live = self._console.is_terminal if self.want_live is None else self.want_live
        if live:
            from rich.live import Live

            self._live = Live(self._table(), console=self._console, refresh_per_second=2, transient=False)
            self._live.start()

    def _row(self, trial: Any) -> dict[str, Any]:
        row = self.rows.setdefault(trial.trial_id, {"label": trial_label(trial), "choices": self.describe(trial.config),
                                                    "status": TrialStatus.PENDING,
                                                    "current": None, "best": None, "epoch": None,
                                                    "started": time.time(), "seconds": None})
        return row

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        row = self._row(trial)
        row["status"] = TrialStatus.RUNNING
        row["started"] = time.time()
        self._line(f"{row['label']} started | {row['choices']}")
        self._refresh()

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        row = self._row(trial)
        value = result.get(self.metric)
        if isinstance(value, (int, float)):
            row["current"] = value
            row["best"] = value if row["best"] is None else max(row["best"], value)
            self.best = value if self.best is None else max(self.best, value)
        row["epoch"] = result.get("epoch")
        row["seconds"] = result.get("time_total_s")
        if result.get("final"):
            row["final_test"] = result.get("test_accuracy")
        elif row["epoch"] is not None:
            cur = "-" if row["current"] is None else f"{row['current'] * 100:.2f}%"
            self._line(f"{row['label']} epoch {row['epoch']}: {self.metric}={cur}")
        self._refresh()

    def _finish(self, trial: Any, status: str, error: str | None = None) -> None:
        row = self._row(trial)
        row["status"] = status
        cur = row["current"]
        cur_s = "-" if cur is None else f"{cur * 100:.2f}%"
        self._line(f"[{self.finished}/{self.total}] {row['label']} {status.lower()} {self.metric}={cur_s} "
                   f"epochs={row['epoch']} | {row['choices']}" + (f"\n    {error}" if error else ""))
        self._refresh()

    def _line(self, text: str) -> None:
        """One plain line when there is no live table (output is not a terminal, or --no-live)."""
        if self._live is None and self._console is not None:
            self._console.print(text, highlight=False, soft_wrap=True, markup=False)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        row = self._row(trial)
        self._finish(trial, TrialStatus.DONE if row.get("final_test") is not None else TrialStatus.STOPPED)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        error = read_error(self.run_dir(trial.config or {}))  # the trial's one line, from its ERROR file
        self._finish(trial, TrialStatus.ERROR, error.splitlines()[0] if error else None)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self._refresh()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._refresh()
        if self._live is not None:
            self._live.stop()
            self._live = None

    # ------------------------------------------------------------------ rendering
    @property
    def finished(self) -> int:
        return sum(r["status"] in _ENDED for r in self.rows.values())

    def time_left(self) -> float | None:
        done = [r for r in self.rows.values() if r["status"] in _ENDED and r.get("seconds")]
        elapsed = time.time() - self.start
        left = None
        if done:
            mean = sum(r["seconds"] for r in done) / len(done)
            left = mean * max(0, self.total - self.finished) / self.concurrency
        if self.time_budget_s:
            budget_left = max(0.0, self.time_budget_s - elapsed)
            left = budget_left if left is None else min(left, budget_left)
        return left

    def _table(self):
        from rich.table import Table

        best = "-" if self.best is None else f"{self.best * 100:.2f}%"
        caption = (f"{self.finished}/{self.total} finished | best {self.metric} {best} | "
                   f"elapsed {_fmt_s(time.time() - self.start)} | left ~{_fmt_s(self.time_left())}")
        table = Table(title=self.title, caption=caption, title_justify="left", caption_justify="left")
        for col in ("trial", "status", "epoch", "current", "best", "key choices"):
            table.add_column(col, justify="right" if col in ("epoch", "current", "best") else "left",
                             overflow="fold" if col == "key choices" else "ellipsis")
        order = {TrialStatus.RUNNING: 0, TrialStatus.PENDING: 1, TrialStatus.DONE: 2, TrialStatus.STOPPED: 3, TrialStatus.ERROR: 4}
        items = sorted(self.rows.items(), key=lambda kv: (order.get(kv[1]["status"], 5), -(kv[1]["best"] or 0)))
        for _tid, r in items[: self.max_rows]:
            style = {TrialStatus.RUNNING: "cyan", TrialStatus.ERROR: "red", TrialStatus.DONE: "green"}.get(r["status"], "")
            pct = lambda v: "-" if v is None else f"{v * 100:.2f}%"  # noqa: E731
            table.add_row(r["label"], f"[{style}]{r['status']}[/]" if style else r["status"], str(r["epoch"] or "-"),
                          pct(r["current"]), pct(r["best"]), r["choices"])
        if len(items) > self.max_rows:
            table.add_row("...", f"{len(items) - self.max_rows} more", "", "", "", "")
        return table

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._table())
