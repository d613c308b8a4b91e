"""CLI smoke tests: listing, a real short training on eurosat-mini, and bad input (exit 2, no traceback)."""

import json

import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from nasattn.cli.main import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_blocks_lists_every_kind():
    res = invoke("blocks")
    assert res.exit_code == 0
    for name in ("residual", "cbam", "coord", "learnable_alpha", "progressive", "gap_linear"):
        assert name in res.stdout
    assert invoke("blocks", "nonsense").exit_code == 2


def test_presets_table():
    res = invoke("presets")
    assert res.exit_code == 0
    for text in ("13.12M", "9.91M", "4.29M", "97.23%", "94.30%"):
        assert text in res.stdout
    first = [res.stdout.index(f" {name} ") for name in ("baseline", "cbam", "balanced")]
    assert first == sorted(first)  # the paper's order, not the alphabet's


def test_help_lists_the_commands_in_order_with_whole_descriptions():
    from nasattn.cli.main import COMMAND_ORDER

    text = invoke("--help").stdout
    listed = [line.split()[0] for line in text.split("Commands:")[1].splitlines() if line[2:3].strip()]
    assert listed[:5] == ["train", "search", "ablate", "fidelity", "report"] and listed == list(COMMAND_ORDER)
    assert "..." not in text.split("Commands:")[1]
    assert "(read from the preset files; nothing is built)." in " ".join(text.split())  # presets' whole description


@pytest.mark.slow
def test_train_on_eurosat_mini_writes_every_output(tmp_path, monkeypatch):
    monkeypatch.setenv("NASATTN_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    threads = torch.get_num_threads()
    try:
        res = invoke("train", "--preset", "balanced", "--data", "eurosat-mini", "--epochs", "2", "--width-mult", "0.125",
                     "--batch-size", "32", "--subset", "0.5", "--threads", "1", "--out", str(out), "--no-progress")
    finally:
        torch.set_num_threads(threads)  # the command sets it for its (here: the test's) process
    assert res.exit_code == 0, res.stdout
    files = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert files == ["arch.yaml", "history.csv", "metrics.json", "model.pt", "predictions.csv", "recipe.yaml"]
    assert f"wrote {out}/: {', '.join(files)}" in " ".join(res.stdout.split())  # the line names every file
    helped = " ".join(invoke("train", "--help").stdout.split())
    assert all(name in helped for name in files)  # and so does --help
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("test_accuracy", "val_accuracy", "kappa", "per_class_accuracy", "macro_f1", "confidence_gap", "ece",
                "params", "flops", "layers", "conv_layers", "train_seconds", "alpha"):
        assert key in metrics, key
    assert metrics["layers"] == 12 and len(metrics["alpha"]) == 11
    assert metrics["torch_threads"] == 1
    assert len(metrics["per_class_accuracy"]) == 10
    history = pd.read_csv(out / "history.csv")
    assert list(history["epoch"]) == [1, 2]
    assert any(c.startswith("alpha/") for c in history.columns)
    arch = yaml.safe_load((out / "arch.yaml").read_text())
    assert arch["stages"][0]["width"] == 8  # 64 * 0.125
    from nasattn.models import build_model, fusion_alphas
    from nasattn.spec import ArchSpec

    model = build_model(ArchSpec.from_yaml((out / "arch.yaml").read_text()))  # model.pt holds every weight of arch.yaml
    model.load_state_dict(torch.load(out / "model.pt", weights_only=True), strict=True)
    assert fusion_alphas(model) == pytest.approx(metrics["alpha"])  # and is the model the metrics describe


def test_train_bad_input_exits_2_with_a_message(tmp_path, monkeypatch):
    monkeypatch.delenv("NASATTN_DATA", raising=False)
    res = runner.invoke(app, ["train", "--preset", "nope"])
    assert res.exit_code == 2 and "unknown preset 'nope'" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["train"])
    assert res.exit_code == 2 and "--preset" in res.output
    bad = tmp_path / "arch.yaml"
    bad.write_text("stages: [{width: 8, attention: {type: cbma}}]\n")
    res = runner.invoke(app, ["train", "--arch", str(bad), "--data", "eurosat-mini"])
    assert res.exit_code == 2 and "stages[0].attention" in res.output and "cbam" in res.output
    res = runner.invoke(app, ["train", "--preset", "baseline", "--data", str(tmp_path / "missing.zip")])
    assert res.exit_code == 2 and "missing.zip" in res.output
    res = runner.invoke(app, ["train", "--preset", "baseline", "--data", "eurosat-mini", "--set", "lr=-1"])
    assert res.exit_code == 2 and "lr" in res.output


# ----------------------------------------------------------------------------- run folders, CLI polish
def test_train_output_numbers_the_default_and_refuses_an_explicit_run(tmp_path):
    from nasattn.config import ConfigError
    from nasattn.rundir import train_output

    default = tmp_path / "runs" / "train"
    assert train_output(default, default=True, overwrite=False) == (default.resolve(), None)
    default.mkdir(parents=True)
    (default / "metrics.json").write_text("{}")
    (tmp_path / "runs" / "train-4").mkdir()
    folder, note = train_output(default, default=True, overwrite=False)
    assert folder == (tmp_path / "runs" / "train-5").resolve() and str(folder) in note
    with pytest.raises(ConfigError, match="--overwrite"):
        train_output(default, default=False, overwrite=False)
    assert train_output(default, default=False, overwrite=True)[0] == default.resolve()


def test_a_second_lock_on_a_folder_is_refused_with_the_holders_pid(tmp_path):
    import os

    from nasattn.rundir import RunFolderBusy, lock_holder, lock_run_folder

    with lock_run_folder(tmp_path / "out", "nasattn search x"):
        assert lock_holder(tmp_path / "out") == {"pid": os.getpid(), "command": "nasattn search x"}
        with pytest.raises(RunFolderBusy, match=f"pid {os.getpid()} \\(nasattn search x\\)"):
            with lock_run_folder(tmp_path / "out"):
                pass
    with lock_run_folder(tmp_path / "out"):  # released at the end of the first run
        pass


def test_train_refuses_a_read_only_out_before_any_work(tmp_path):
    import os

    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    res = runner.invoke(app, ["train", "--preset", "baseline", "--data", "eurosat-mini", "--out", str(ro / "run")])
    assert res.exit_code == 2 and "permission" in res.output


def test_help_shows_no_bool_placeholders():
    for args in (["--help"], ["search", "--help"], ["ablate", "--help"], ["train", "--help"]):
        res = runner.invoke(app, args, env={"COLUMNS": "200"})
        assert res.exit_code == 0, res.output
        assert "<bool>" not in res.output and "BOOLEAN" not in res.output, res.output


def test_importing_the_cli_does_not_import_the_training_stack():
    import subprocess
    import sys

    code = "import sys, nasattn.cli.main; print(sorted(m for m in ('torch', 'ray', 'optuna') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_run_files_follow_the_umask(tmp_path):
    import os
    from types import SimpleNamespace

    from nasattn.engine.io import write_run

    old = os.umask(0o022)
    try:
        write_run(tmp_path / "run", SimpleNamespace(metrics={"a": 1}, history=[{"epoch": 1}], spec=None, recipe=None,
                                                    model=None, predictions=None))
    finally:
        os.umask(old)
    for name in ("metrics.json", "history.csv"):
        assert (tmp_path / "run" / name).stat().st_mode & 0o777 == 0o644, name


def test_trial_table_prints_one_plain_line_per_event_when_not_live(capsys):
    from types import SimpleNamespace

    from nasattn.tune.progress import TrialTable

    table = TrialTable(total=2, live=False)
    table.setup()
    trial = SimpleNamespace(trial_id="abc123", config={"arch": {"stages": [{"block": "residual", "width": 8}]}})
    table.on_trial_start(0, [], trial)
    table.on_trial_result(0, [], trial, {"val_accuracy": 0.5, "epoch": 1, "time_total_s": 1.0})
    table.on_trial_result(0, [], trial, {"val_accuracy": 0.6, "epoch": 2, "time_total_s": 2.0})
    table.on_trial_complete(0, [], trial)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4, lines
    assert lines[0].startswith("abc123 started") and "residual" in lines[0]
    assert lines[1] == "abc123 epoch 1: val_accuracy=50.00%" and lines[2].endswith("val_accuracy=60.00%")
    assert lines[3].startswith("[1/2] abc123 stopped val_accuracy=60.00% epochs=2")


def test_bundled_studies_by_name_and_init(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["init", "ex"])
    assert res.exit_code == 0, res.output
    for f in ("studies/quickstart.yaml", "studies/eurosat-cpu.yaml", "search_spaces/eurosat.yaml"):
        assert (tmp_path / "ex" / f).is_file(), f
    assert runner.invoke(app, ["init", "ex"]).exit_code == 2  # would overwrite: refused without --force
    assert runner.invoke(app, ["init", "ex", "--force"]).exit_code == 0
    study = tmp_path / "mine.yaml"
    study.write_text("space: eurosat\nbudget: {trials: 0}\n")  # the bundled space by name; an invalid budget stops it
    res = runner.invoke(app, ["search", str(study)])
    assert res.exit_code == 2 and "budget.trials" in res.output
    study.write_text("space: eurosat\nseeds: {presets: [balanced]}\nsampler: {type: bayes}\n")
    from nasattn.search.study import load_study

    with pytest.raises(Exception, match="sampler"):
        load_study(study)
    study.write_text("space: eurosat\n")
    assert load_study(study).space_source.endswith("eurosat.yaml")


def test_space_prints_the_sampled_recipe_as_yaml():
    res = runner.invoke(app, ["space", "search_spaces/eurosat.yaml", "-n", "2", "--no-dims"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    blocks = []
    for i, ln in enumerate(lines):
        if ln.startswith("recipe:"):
            j = i + 1
            while j < len(lines) and lines[j].startswith(" "):
                j += 1
            blocks.append(yaml.safe_load("\n".join(lines[i:j]))["recipe"])
    assert len(blocks) == 2 and all(isinstance(b, dict) and "lr" in b for b in blocks), res.output
    for b in blocks:
        assert all(len(repr(v)) <= 10 for v in b.values() if isinstance(v, float)), b  # 4 significant digits


@pytest.mark.slow
def test_a_wheel_installed_outside_the_checkout_ships_the_studies_and_spaces(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    wheels, target, work = tmp_path / "wheels", tmp_path / "site", tmp_path / "work"
    work.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
                    str(root)], check=True, cwd=tmp_path)
    wheel = next(wheels.glob("nasattn-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, cwd=tmp_path)
    env = dict(os.environ, PYTHONPATH=str(target), NASATTN_CACHE=str(tmp_path / "cache"))

    def nasattn(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "nasattn.cli.main", *args], cwd=work, env=env, capture_output=True,
                              text=True, timeout=300)

    where = subprocess.run([sys.executable, "-c", "import nasattn; print(nasattn.__file__)"], cwd=work, env=env,
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(target)), where  # the installed copy, not the checkout
    res = nasattn("space", "quickstart", "-n", "0", "--no-dims")  # a bundled study by name, its space beside it
    assert res.returncode == 0 and "eurosat" in res.stdout, res.stderr
    res = nasattn("search", "nope")
    assert res.returncode == 2 and "quickstart" in res.stderr and "eurosat-cpu" in res.stderr
    res = nasattn("init", "ex")
    assert res.returncode == 0, res.stderr
    assert (work / "ex" / "studies" / "quickstart.yaml").read_text() == (root / "studies" / "quickstart.yaml").read_text()
    assert (work / "ex" / "search_spaces" / "eurosat.yaml").is_file()
