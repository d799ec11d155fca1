"""The command line prints the library's own errors as one line and keeps every other
exception's traceback, marked as a bug to report."""
from __future__ import annotations

import pytest

from recsys import cli
from recsys.errors import ConfigError, RecsysError


def _failing_command(exc: Exception):
    def run(args):
        raise exc
    return run


def _main_with(monkeypatch, exc: Exception) -> int:
    monkeypatch.setattr(cli.train, "_cmd_plot", _failing_command(exc))
    return cli.main(["plot", "anything"])


def test_library_errors_are_one_line_with_status_2(monkeypatch, capsys):
    assert _main_with(monkeypatch, ConfigError("train.lr must be positive; set train.lr")) == 2
    err = capsys.readouterr().err
    assert err == "recsys: error: train.lr must be positive; set train.lr\n"


@pytest.mark.parametrize("exc", [KeyError("n_layers"), ValueError("shapes differ"), FileNotFoundError("x")])
def test_other_exceptions_keep_their_traceback_and_say_it_is_a_bug(monkeypatch, capsys, exc):
    with pytest.raises(type(exc)):
        _main_with(monkeypatch, exc)
    assert "this is a bug in recsys; please report it" in capsys.readouterr().err


def test_every_library_error_type_is_a_recsys_error():
    from recsys import errors
    from recsys.export.topk import DataError
    from recsys.serving import UnknownUsersError
    from recsys.tuning.worker import StudyExhaustedError

    for error in (errors.ConfigError, errors.DataError, errors.RunFolderError, errors.NonFiniteLossError,
                  DataError, UnknownUsersError, StudyExhaustedError):
        assert issubclass(error, RecsysError)


def test_unknown_run_folder_is_a_one_line_error(tmp_path, capsys):
    assert cli.main(["evaluate", str(tmp_path / "missing")]) == 2
    assert "has no best.pt" in capsys.readouterr().err
