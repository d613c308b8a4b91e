"""Shared Ray Tune execution for search, ablation and fidelity runs.

Ray is imported when a run starts, not when nasattn is imported: by this package's modules and by
the search's Searcher, schedulers and callbacks (``nasattn.search.searcher``, ``.recorder``, ``.run``)
and ``nasattn.fidelity.run``.

Contract
--------
``ray_session(address=None, num_cpus=None, num_gpus=None)``  (context manager)
    ``address=None`` starts an embedded local Ray (no dashboard, token auth off) and stops it at
    exit; ``"auto"``, ``"ray://host:port"`` or ``"host:port"`` join an existing cluster, left
    running at exit (an address where nothing answers within 3 s is a ConfigError naming it).
    A watchdog (:mod:`nasattn.tune.reaper`) kills the embedded Ray's processes if the driver dies;
    ``preflight(resources, ray_config, source, checkpoints, data=...)`` (:mod:`nasattn.tune.resources`)
    checks the address, that a trial fits, that checkpoints reach a storage every node reaches
    (``ray.storage``, ``ray.shared_fs``) and, on a cluster, that every node with CPUs lists ``data``
    as the driver does (:mod:`nasattn.tune.nodes`), before a run writes anything. On a cluster the
    driver's trial settings (``session.TRIAL_ENV_VARS``: ``NASATTN_CACHE``, ``NASATTN_DATA`` ...) travel
    to every node in the job's ``runtime_env``, and ``start_ray(..., home=out)`` starts the sink that
    receives the run folders of trials on other nodes (:mod:`nasattn.tune.home`).
    Sets ``TUNE_GLOBAL_CHECKPOINT_S=1`` (unless set) so that experiment snapshots are frequent enough
    for ``--resume`` after a ``kill -9``.

``train_trial(config)``  (the one Tune function trainable)
    config keys:
      ``arch``              ArchSpec dict (required)
      ``recipe``            Recipe dict (``nasattn.engine.Recipe``; ``{}`` = defaults)
      ``data``              absolute path, or ``"eurosat-mini"``; None = ``$NASATTN_DATA``
      ``seed``              int (default 0)
      ``device``            ``"auto"`` (default): the GPU of ``ray.get_gpu_ids()``, else CPU (even where
                            CUDA is visible); a GPU assigned but no CUDA in the trial, or ``"cuda"``
                            without an assigned GPU, is a ``TrialDeviceError`` naming the trial
                            (:mod:`nasattn.tune.placement`; ``run_dir/placement.json`` records it)
      ``run_dir``           absolute folder for ``write_run`` (metrics.json, history.csv, arch.yaml,
                            recipe.yaml, model.pt, predictions.csv); or ``runs_root``: absolute
                            folder, the run goes to ``runs_root/<tune trial id>``; neither: no run
      ``checkpoint_every``  epochs between Tune checkpoints (0 = never); a restored/paused trial
                            resumes from ``tune.get_checkpoint()`` via ``train(resume_state=...)``
      ``checkpoint_budget`` a due checkpoint is skipped while checkpoints have taken more than this
                            fraction of the trial's time (default 0.05; None: never skip, for
                            schedulers that pause trials)
      optional: ``subset`` (stratified fraction of the data), ``width_mult``,
      ``max_steps_per_epoch``, ``measure_latency`` (adds ``latency_ms``, batch 1)
      anything else is passed through ("extra"): scalar extras are added to metrics.json.
    Reports one row per epoch (``epoch``, ``train_loss``, ``train_accuracy``, ``val_loss``,
    ``val_accuracy``, ``lr``, ``alpha/<name>``, ``params``, ``flops``, ``final=False``) except the
    last epoch, whose row is merged into the final report (``final=True``) sent after testing and
    after the run was written: every ``engine.train`` metric as scalars (``test_accuracy``,
    ``kappa``, ``macro_f1``, ``min_class_accuracy``, ``ece``, ``per_class_accuracy/<i>``,
    ``alpha/<name>``, ``train_seconds``, ``epochs_run``, ...) plus ``run_dir``.  So a scheduler that
    stops a trial at ``max_t`` never cuts off the run folder.  A run folder with a ``DONE`` marker is
    not retrained: the trial re-reports it (idempotent re-runs after a crash).
    Errors (an exception, NaN loss -> TrainingDivergedError, CUDA OOM) make the Tune trial ERROR.

``run_grid(configs, storage_path=..., name=..., cpus_per_trial=1, gpus_per_trial=0,
max_concurrent=None, callbacks=(), resume=False)`` -> ``ResultGrid``
    Runs each config once (a grid over indices; configs travel via ``tune.with_parameters``).
    ``resume=True`` restores ``storage_path/name`` if it exists (finished trials skipped).

``result_rows(result_grid)`` -> list of flat dicts (``trial_id``, ``status`` COMPLETE/STOPPED/ERROR,
``config.*``, ``epochs``, ``duration_s``, every metric, ``error``, ``path``); ``write_rows_csv``.

``TrialTable`` (nasattn.tune.progress): a Tune callback printing a live rich table of trials.
"""

from nasattn.tune.runner import grid_trainable, pending, run_grid, trial_resources
from nasattn.tune.session import is_embedded, ray_session
from nasattn.tune.trainable import (
    DONE_MARKER,
    flatten,
    resolve_run_dir,
    result_rows,
    train_trial,
    trial_row,
    write_rows_csv,
)

__all__ = [
    "DONE_MARKER", "flatten", "grid_trainable", "is_embedded", "ray_session", "resolve_run_dir",
    "pending", "result_rows", "run_grid", "train_trial", "trial_resources", "trial_row", "write_rows_csv",
]
