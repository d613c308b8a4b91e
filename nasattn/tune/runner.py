"""Running a fixed list of trial configs (an ablation grid) through Ray Tune, resumably."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from nasattn.safewrite import DiskError, disk_error
from nasattn.schema import DONE_MARKER, EXPERIMENT
from nasattn.tune.trainable import train_trial


def trial_resources(cpus: float = 1, gpus: float = 0) -> dict[str, float]:
    """Per-trial resources for ``tune.with_resources`` (fractional GPUs allowed, e.g. 0.25)."""
    res = {"cpu": float(cpus)}
    if gpus:
        res["gpu"] = float(gpus)
    return res


def _indexed_trial(config: dict[str, Any], configs: Sequence[dict[str, Any]] = ()) -> None:
    """Trainable for a grid: ``config["index"]`` picks the full config from ``configs``."""
    full = dict(configs[int(config["index"])])
    full.update({k: v for k, v in config.items() if k != "index"})
    train_trial(full)


def grid_trainable(configs: Sequence[dict[str, Any]], cpus: float = 1, gpus: float = 0):
    """The trainable used by :func:`run_grid`."""
    from ray import tune  # lazy: ray is a heavy optional package

    return tune.with_resources(tune.with_parameters(_indexed_trial, configs=list(configs)), trial_resources(cpus, gpus))


def run_grid(
    configs: Sequence[dict[str, Any]],
    *,
    storage_path: str | Path,
    name: str = EXPERIMENT,
    cpus_per_trial: float = 1,
    gpus_per_trial: float = 0,
    max_concurrent: int | None = None,
    callbacks: Sequence[Any] = (),
    resume: bool = False,
    max_failures: int = 0,
    progress_reporter: Any = None,
    verbose: int = 0,
):
    """Run every config (a :func:`train_trial` config) once as a Tune trial; returns the ResultGrid.

    ``storage_path`` must be absolute or a URI (``s3://bucket/path``); Tune's experiment lives in
    ``storage_path/name``, trial folders named ``<index>-<trial id>``. A config whose run folder holds the DONE
    marker is finished and not started again (:func:`pending`; its row comes from its run folder), so a grid
    with nothing pending returns ``[]`` without starting Tune. ``resume=True`` continues an interrupted run of
    the same configs: a fresh Tuner runs the pending configs, an unfinished one from the newest checkpoint its earlier trial left
    (the trainable loads it as plain tensors; from a storage URI too). Nothing of the earlier experiment is unpickled:
    a run folder from elsewhere cannot run code through Tune's saved state.
    Call inside :func:`nasattn.tune.ray_session`.
    """
    from ray import tune  # lazy: ray is a heavy optional package

    todo = pending(configs)
    if not todo:
        return []
    storage_path = str(storage_path) if is_uri(storage_path) else Path(storage_path).resolve()
    if resume:
        exp = storage_path / name if isinstance(storage_path, Path) else uri_join(storage_path, name)
        configs = [_resumed(c, latest_checkpoint(exp, i)) for i, c in enumerate(configs)]
    tuner = tune.Tuner(
        grid_trainable(configs, cpus_per_trial, gpus_per_trial),
        param_space={"index": tune.grid_search(todo)},
        tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent or None, reuse_actors=True,
                                    trial_dirname_creator=_grid_dirname),
        run_config=tune.RunConfig(
            name=name,
            storage_path=str(storage_path),
            callbacks=list(callbacks),
            failure_config=tune.FailureConfig(max_failures=max_failures),
            verbose=verbose,
            progress_reporter=progress_reporter,
        ),
    )
    return tuner.fit()


def pending(configs: Sequence[dict[str, Any]]) -> list[int]:
    """Indices of the configs still to train: those without a run folder or whose run folder has no DONE marker."""
    return [i for i, c in enumerate(configs) if not (c.get("run_dir") and (Path(c["run_dir"]) / DONE_MARKER).is_file())]


def _grid_dirname(trial: Any) -> str:
    """A grid trial's folder: its config index first, so a resume finds the checkpoints of each config."""
    return f"{int(trial.config['index'])}-{trial.trial_id}"


def _resumed(config: dict[str, Any], checkpoint: Path | str | None) -> dict[str, Any]:
    return config if checkpoint is None else {**config, "resume_from": str(checkpoint)}


def is_uri(storage: str | Path) -> bool:
    """A storage URI of a remote filesystem (``s3://...``), not a local path or ``file://``."""
    scheme, sep, _ = str(storage).partition("://")
    return bool(sep) and scheme.lower() != "file"


def uri_join(uri: str, *names: str) -> str:
    """``uri`` with ``names`` appended to its path, its query (``?endpoint_override=...``) kept at the end."""
    base, sep, query = uri.partition("?")
    return "/".join([base.rstrip("/"), *names]) + sep + query


def _index(name: str) -> int:
    tail = name.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def uri_checkpoints(exp_uri: str, prefix: str = "") -> list[tuple[str, str]]:
    """``(trial folder, checkpoint folder)`` names of the checkpoints in Tune's experiment on a storage URI
    (listed through pyarrow's filesystem), of the trial folders whose names start with ``prefix``."""
    from pyarrow import fs as pafs  # pyarrow ships with ray[tune]

    filesystem, path = pafs.FileSystem.from_uri(exp_uri)

    def folders(where: str, start: str) -> list[str]:
        infos = filesystem.get_file_info(pafs.FileSelector(where, allow_not_found=True))
        return [i.base_name for i in infos if i.type == pafs.FileType.Directory and i.base_name.startswith(start)]

    return [(t, c) for t in folders(path, prefix) for c in folders(f"{path}/{t}", "checkpoint_")]


def delete_uri_checkpoint(exp_uri: str, trial: str, checkpoint: str) -> None:
    """Delete one checkpoint folder of Tune's experiment on a storage URI."""
    from pyarrow import fs as pafs  # pyarrow ships with ray[tune]

    filesystem, path = pafs.FileSystem.from_uri(exp_uri)
    filesystem.delete_dir(f"{path}/{trial}/{checkpoint}")


def latest_uri_checkpoint(exp_uri: str, number: int) -> str | None:
    """:func:`latest_checkpoint` in an experiment on a storage URI."""
    found = uri_checkpoints(exp_uri, f"{number}-")
    if not found:
        return None
    trial, ckpt = max(found, key=lambda tc: _index(tc[1]))
    return uri_join(exp_uri, trial, ckpt)


def latest_checkpoint(exp_dir: Path | str, number: int) -> Path | str | None:
    """The newest Tune checkpoint folder of trial ``number`` (a study number or a grid index) under
    ``exp_dir``, whose trial folders are named ``<number>-<trial id>`` (any earlier session); None if none.
    ``exp_dir`` may be a storage URI (then so is the answer)."""
    if is_uri(exp_dir):
        return latest_uri_checkpoint(str(exp_dir), number)
    found = [p for p in Path(exp_dir).glob(f"{number}-*/checkpoint_*") if p.is_dir()]
    if not found:
        return None
    return max(found, key=lambda p: (_index(p.name), p.stat().st_mtime))


def unfinished_with_checkpoint(grid: Any) -> int:
    """How many trials of a ResultGrid stopped without an error before their last epoch, with a checkpoint
    to resume from (what an interrupted grid reports as "checkpointed")."""
    return sum(1 for r in grid if r.error is None and not (r.metrics or {}).get("final") and _has_checkpoint(r))


def _has_checkpoint(result: Any) -> bool:
    """A checkpoint of this session, or one an earlier session of the same config left (a resumed trial
    interrupted before its first new checkpoint still resumes from that one)."""
    if result.checkpoint is not None:
        return True
    index = (result.config or {}).get("index")
    return index is not None and latest_checkpoint(Path(result.path).parent, int(index)) is not None


def disk_failure(grid: Any, hint: str = "rerun with --resume") -> DiskError | None:
    """The first trial error of a ResultGrid that means a full or read-only disk (one line ending in
    ``hint``), else None."""
    return next((e for r in grid if r.error is not None and (e := disk_error(r.error, hint=hint)) is not None), None)
