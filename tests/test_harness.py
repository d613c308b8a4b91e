"""The command harness: user errors -> their message and exit code, signals -> 130/143, the resume command."""

from __future__ import annotations

import signal

import pytest
import typer

from nasattn.ablation.run import AblationFailed
from nasattn.cli.common import handle_user_errors
from nasattn.config import ConfigError, NasattnError
from nasattn.data.dataset import DataError, DataNotFoundError
from nasattn.engine.trainer import TrainingDivergedError
from nasattn.fidelity.run import FidelityFailed
from nasattn.interrupt import Interrupted
from nasattn.registry import UnknownBlockError
from nasattn.report import NotANasattnFolder
from nasattn.rundir import RunFolderBusy, current_command, resume_command
from nasattn.schema import ExitCode
from nasattn.search.run import SearchFailed
from nasattn.search.space.dims import NotInSpace, Rejected
from nasattn.tune.placement import TrialDeviceError


def _exit_of(exc: BaseException, capsys) -> tuple[int, str]:
    @handle_user_errors
    def command() -> None:
        raise exc

    with pytest.raises(typer.Exit) as info:
        command()
    return info.value.exit_code, capsys.readouterr().err


@pytest.mark.parametrize("exc, code", [
    (ConfigError("--set x: unknown field"), 2),
    (RunFolderBusy("runs/s is in use by another run: pid 1"), 2),
    (FileNotFoundError("no such file: a.yaml"), 2),
    (SearchFailed("every trial failed (2 of 2); first error: X"), 1),
    (AblationFailed("every trial failed (3 of 3); first error: X"), 1),
    (FidelityFailed("every training failed (1 of 1); first error: X"), 1),
])
def test_a_user_error_prints_its_message_and_exits_with_its_code(exc, code, capsys):
    got, err = _exit_of(exc, capsys)
    assert got == code and str(exc) in err and "Traceback" not in err


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, ExitCode.INTERRUPTED), (signal.SIGTERM, ExitCode.TERMINATED)])
def test_a_signal_before_any_result_is_one_line_and_130_or_143(signum, code, capsys):
    got, err = _exit_of(Interrupted(signum), capsys)
    assert got == code == 128 + signum
    assert err.strip() == f"interrupted ({signal.Signals(signum).name}) before any result was written"


def test_a_bug_is_not_swallowed(capsys):
    @handle_user_errors
    def command() -> None:
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        command()


def test_every_user_facing_error_shares_the_base():
    for cls in (ConfigError, RunFolderBusy, DataError, DataNotFoundError, UnknownBlockError, NotANasattnFolder,
                TrainingDivergedError, TrialDeviceError, SearchFailed, AblationFailed, FidelityFailed, Rejected,
                NotInSpace, Interrupted):
        assert issubclass(cls, NasattnError), cls
    assert isinstance(UnknownBlockError("x"), KeyError) and isinstance(ConfigError("x"), ValueError)  # old bases kept


def test_the_resume_command_is_the_command_line_with_an_absolute_out_and_resume(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["fidelity", "runs/my search", "--set", "recipe.epochs=12", "-o", "rel", "--resume", "--seeds", "0,1"]
    assert current_command(argv) == "nasattn fidelity 'runs/my search' --set recipe.epochs=12 -o rel --resume --seeds 0,1"
    assert resume_command("rel", argv) == (f"nasattn fidelity 'runs/my search' --set recipe.epochs=12 --seeds 0,1 "
                                           f"--out {tmp_path / 'rel'} --resume")
    assert resume_command("x", ["search", "q", "--out=x"]).endswith(f"search q --out {tmp_path / 'x'} --resume")
