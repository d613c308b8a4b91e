"""The run-folder schema: every file name nasattn writes, the shared CSV columns, the status words, exit codes.

Ground floor: imports nothing from nasattn. Every writer and reader takes these names from here, so a
file, a column or a status is spelled once (``tests/test_schema.py`` greps ``nasattn/`` for stray
literals).

A training run folder (``nasattn train``, and every trial of a search, an ablation or a fidelity study)::

    metrics.json history.csv predictions.csv arch.yaml recipe.yaml model.pt   (RUN_FILES)
    DONE       written after the run's files: the run finished (a re-run only re-reports)
    ERROR      written when training raised: "ExcType: message (on node IP (ID))"

A search folder: run.json, study.yaml, study.db, trials.csv, report.html, best/, trials/, tune/,
stopped.json; an ablation folder: ablation.json, ablation.csv, summary.csv, trials.json, runs/, tune/;
a fidelity folder: fidelity.json, fidelity.csv, agreement.csv, paired.csv, trials.json, runs/, tune*/.
"""

from __future__ import annotations

from enum import Enum, IntEnum

# ------------------------------------------------------------------ one training run's folder
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"
PREDICTIONS_FILE = "predictions.csv"
ARCH_FILE = "arch.yaml"
RECIPE_FILE = "recipe.yaml"
MODEL_FILE = "model.pt"
RUN_FILES = (METRICS_FILE, HISTORY_FILE, ARCH_FILE, RECIPE_FILE, MODEL_FILE, PREDICTIONS_FILE)
"""What :func:`nasattn.engine.write_run` writes into a run folder."""
DONE_MARKER = "DONE"
"""Written in a run folder after its files (JSON of the final metrics): the run finished."""
ERROR_FILE = "ERROR"
"""Written in a run folder when training raised: ``ExcType: message (on node <ip> (<node id prefix>))``."""
STATE_FILE = "train_state.pt"
"""A trial's resumable training state (checkpoints)."""
PLACEMENT_FILE = "placement.json"
"""Where a trial ran (node, device), written in its run folder."""

# ------------------------------------------------------------------ study folders
LOCK_FILE = ".nasattn.lock"
"""The output folder's lock (see :mod:`nasattn.rundir`)."""
REPORT_FILE = "report.html"
EXPERIMENT = "tune"
"""Ray Tune's experiment folder inside an output folder (a fidelity study adds ``tune-2``, ...)."""
TRIALS_JSON = "trials.json"
"""The trial configs of an ablation's or a fidelity study's Tune experiment."""
RUNS_DIR = "runs"
"""An ablation's or a fidelity study's run folders (``runs/<variant>/seed<k>``)."""

# search
RUN_JSON = "run.json"
STUDY_FILE = "study.yaml"
STUDY_DB = "study.db"
TRIALS_CSV = "trials.csv"
STOPPED_FILE = "stopped.json"
BEST_DIR = "best"
TRAINED_ARCH_FILE = "trained_arch.yaml"
"""best/'s copy of the best trial's run-folder arch.yaml (the widths it trained with)."""
BEST_MISSING = "missing"
"""best/metrics.json's list of the best trial's run files that best/ lacks (absent from its run folder)."""
TRIALS_DIR = "trials"

# ablation
ABLATION_JSON = "ablation.json"
ABLATION_CSV = "ablation.csv"
SUMMARY_CSV = "summary.csv"

# fidelity
FIDELITY_JSON = "fidelity.json"
FIDELITY_CSV = "fidelity.csv"
AGREEMENT_CSV = "agreement.csv"
PAIRED_CSV = "paired.csv"
PATH_JSON = "path.json"  # an ablation path: its ends, decisions and settings
PATH_CSV = "path.csv"  # every candidate of every step, per seed
PATH_SUMMARY_CSV = "path_summary.csv"  # the chosen step per level with its paired statistics
FIDELITY_DIR = "fidelity"
"""A fidelity study's default folder inside its search folder."""


# ------------------------------------------------------------------ columns read by more than one module
STATUS = "status"
ERROR = "error"
RUN_DIR = "run_dir"
VARIANT = "variant"
SEED = "seed"
TEST_ACCURACY = "test_accuracy"
VAL_ACCURACY_LAST = "val_accuracy"
"""The validation accuracy after a trial's last trained epoch: the value a search ranks, records in
trials.csv and the Optuna study, and fidelity compares (``low_val_accuracy``, ``high_val_accuracy_*``)."""
VAL_ACCURACY_BEST = "val_accuracy"
"""The best validation accuracy over the epochs of a training run: ``metrics.json``'s ``val_accuracy``
(the epoch whose weights model.pt keeps and the test split is scored with). Same key as
:data:`VAL_ACCURACY_LAST`, another meaning: a run folder's metrics.json vs a search's trials.csv."""
RESTORED_VALUES = "restored_values"
"""In the first result of a trial resumed from a checkpoint: ``{"<epoch>": val_accuracy}`` of the epochs the
checkpoint restored, so that the study gets values a crash kept from it (a dict: no CSV column takes it)."""
ABLATION_LEAD_COLUMNS = (VARIANT, SEED, "split_seed", STATUS, ERROR, RUN_DIR)
"""The first columns of ablation.csv."""

TUNE_BOOKKEEPING = frozenset({
    "timestamp", "checkpoint_dir_name", "should_checkpoint", "done", "training_iteration", "trial_id",
    "date", "time_this_iter_s", "time_total_s", "pid", "hostname", "node_ip", "time_since_restore",
    "iterations_since_restore", "config", "experiment_tag",
})
"""Keys Ray Tune adds to every reported result: not metrics of the trial."""


class TrialStatus(str, Enum):
    """The ``status`` of a trial or a run, as trials.csv, ablation.csv and the live table spell it."""

    COMPLETE = "COMPLETE"  # trained to its last epoch
    STOPPED = "STOPPED"  # ended early by the scheduler or the time limit (a search)
    FAILED = "FAILED"  # a search trial whose training raised
    ERROR = "ERROR"  # an ablation / grid run whose training raised
    UNFINISHED = "UNFINISHED"  # interrupted or never started (an ablation run): not the variant's fault
    INTERRUPTED = "INTERRUPTED"  # a search trial cut by a signal; --resume continues it
    NOT_STARTED = "NOT_STARTED"  # a search trial the time limit ended before its first epoch
    RUNNING = "RUNNING"
    PENDING = "PENDING"
    DONE = "DONE"  # the live table: finished with a test result

    def __str__(self) -> str:
        return str(self.value)

    __format__ = str.__format__


NOT_FINISHED = frozenset({TrialStatus.ERROR, TrialStatus.FAILED, TrialStatus.UNFINISHED})
"""Statuses of rows that do not count as finished runs in the ablation statistics."""


class ExitCode(IntEnum):
    """nasattn's exit codes."""

    OK = 0
    FAILED = 1  # the work failed (every run of a study, a diverged training, a failed check)
    USAGE = 2  # bad input: the message says what to change
    INTERRUPTED = 130  # SIGINT (128 + 2): outputs written, --resume continues
    TERMINATED = 143  # SIGTERM (128 + 15)


# ------------------------------------------------------------------ defaults shared by a library and its command
FIDELITY_TOP = 3
"""``nasattn fidelity --top``: re-train the k best finished trials."""
FIDELITY_RANDOM = 3
"""``nasattn fidelity --random``: and k random other finished trials."""
FIDELITY_BASE_PRESET = "balanced"
"""``nasattn fidelity --base-preset``: paired.csv compares every trial with this preset's trial."""
FIDELITY_EPOCHS_FACTOR = 4
"""Without ``--set recipe.epochs``, the higher budget trains this many times the search's epochs."""
FIDELITY_METRICS = (VAL_ACCURACY_LAST, TEST_ACCURACY)
"""``nasattn fidelity --metric``: the compared metrics (the first is the default)."""


def fidelity_low(metric: str) -> str:
    """fidelity.csv's column of the search's (low-budget) value of ``metric``: ``low_val_accuracy``."""
    return f"low_{metric}"


def fidelity_high(metric: str, part: str | int) -> str:
    """fidelity.csv's column of the higher budget's ``metric``: ``part`` a seed (``high_val_accuracy_seed3``),
    or ``"mean"`` / ``"std"`` over the seeds (``high_val_accuracy_mean``)."""
    return f"high_{metric}_seed{part}" if isinstance(part, int) else f"high_{metric}_{part}"


# Environment variables nasattn reads (one owner: the modules that read them and the list of those that
# travel to a cluster's nodes import them from here).
ENV_DATA = "NASATTN_DATA"
"""The dataset (folder, zip or built-in name) when a command is given none."""
ENV_CACHE = "NASATTN_CACHE"
"""Where decoded datasets are cached (default ``~/.cache/nasattn``)."""
ENV_MAX_MEGAPIXELS = "NASATTN_MAX_MEGAPIXELS"
"""The per-image pixel budget checked before decoding, in megapixels."""
ENV_PRESETS = "NASATTN_PRESETS"
"""A folder of extra preset YAML files."""
ENV_TRIAL_DEVICE = "NASATTN_TRIAL_DEVICE"
"""Forces every trial's device (tests and benchmarks)."""
ENV_TEST_RENDEZVOUS = "NASATTN_TEST_RENDEZVOUS"
"""Tests only: trials wait at a rendezvous so that their placement is observed together."""
