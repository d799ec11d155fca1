"""Where a study lives, and how trials of dead workers are found and retried.

Storage choices (``storage`` in the study file or ``--storage``):

- ``null`` (default): SQLite, ``<study folder>/study.db``;
- ``journal`` or ``journal:PATH``: Optuna's journal file (append-only log with file locks),
  the sturdiest choice for many processes on one machine; default path
  ``<study folder>/journal.log``;
- any SQLAlchemy URL (``sqlite:///...``, ``postgresql://user@host/db``, ...): RDB storage,
  which workers on several machines can share.

A trial whose process died stays RUNNING in the storage. Two mechanisms turn it into a FAIL
and queue a retry with the same parameters (:func:`retry_failed_trial`, at most
``MAX_RETRY`` times):

- RDB storages record a heartbeat every ``heartbeat_interval`` seconds; a trial silent for
  two intervals is failed by the next worker that starts a trial (any machine);
- every worker tags its trials with ``host:pid:start-time``; before starting a trial, a
  worker fails the RUNNING trials of processes on its own host that no longer exist
  (immediately, for every storage type, including journal files, which have no heartbeat).
"""
from __future__ import annotations

import fcntl
import os
import socket
import warnings
from pathlib import Path

import optuna
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from recsys.errors import ConfigError

MAX_RETRY = 3
WORKER_ATTR = "worker"


def retry_failed_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """Queue a WAITING copy of a failed trial, with its parameters, at most ``MAX_RETRY`` times.

    Like Optuna's ``RetryHeartbeatStaleTrialCallback`` (same ``failed_trial`` and
    ``retry_history`` system attributes), but the copy drops the dead worker's tag so that it
    is not mistaken for an orphan once another worker picks it up.
    """
    history = [*trial.system_attrs.get("retry_history", []), trial.number]
    if len(history) > MAX_RETRY:
        return
    study.add_trial(optuna.trial.create_trial(
        state=TrialState.WAITING,
        params=trial.params,
        distributions=trial.distributions,
        user_attrs={k: v for k, v in trial.user_attrs.items() if k != WORKER_ATTR},
        system_attrs={**trial.system_attrs, "failed_trial": trial.system_attrs.get("failed_trial", trial.number),
                      "retry_history": history},
    ))


def storage_url(spec_storage: str | None, study_dir: Path) -> str:
    """The storage a study uses, as a URL or ``journal:PATH``."""
    if spec_storage is None or spec_storage == "sqlite":
        return f"sqlite:///{(study_dir / 'study.db').resolve()}"
    if spec_storage == "journal":
        return f"journal:{(study_dir / 'journal.log').resolve()}"
    if spec_storage.startswith("journal:") or "://" in spec_storage:
        return spec_storage
    raise ConfigError(f"storage '{spec_storage}' is not understood: use journal, journal:PATH or a SQLAlchemy "
                      "URL such as sqlite:///study.db or postgresql://user@host/db")


def open_storage(url: str, heartbeat_interval: int) -> optuna.storages.BaseStorage:
    if url.startswith("journal:"):
        path = Path(url[len("journal:"):])
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_interval,
                          heartbeat_stale_trial_callback=retry_failed_trial)


def _start_time(pid: int) -> str:
    """Start time of a process in clock ticks since boot (Linux), '' where unknown.

    Together with the pid it names a process uniquely: a recycled pid has a later start time.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def worker_identity() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_time(pid)}"


def _is_alive(identity: str) -> bool:
    host, pid, started = identity.rsplit(":", 2)
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not started or _start_time(int(pid)) == started


def fail_orphaned_trials(study: optuna.Study) -> list[int]:
    """Fail (and queue for retry) RUNNING trials of dead worker processes on this host.

    Returns the numbers of the trials failed. Call while holding :class:`AdmissionLock`, so a
    trial that another local worker has just created is already tagged.
    """
    host = socket.gethostname()
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        identity = trial.user_attrs.get(WORKER_ATTR)
        if not identity or identity.rsplit(":", 2)[0] != host or _is_alive(identity):
            continue
        try:
            frozen = study.tell(trial.number, state=TrialState.FAIL)
        except (RuntimeError, ValueError):
            continue  # another worker failed it first
        retry_failed_trial(study, frozen)
        failed.append(trial.number)
    return failed


class AdmissionLock:
    """An exclusive lock file in the study folder, shared by the workers on this machine.

    Deciding whether to start another trial and creating it happen under this lock, so W
    workers never start more trials than ``trials`` requires. The kernel releases it when
    its process dies.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle = None

    def acquire(self) -> None:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.path, "a")
            fcntl.flock(handle, fcntl.LOCK_EX)
            self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None
