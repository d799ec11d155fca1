"""Download the public release files of a dataset: resumable, verified, atomic.

The catalogue ``recsys/data/downloads.yaml`` lists, per dataset, the files of its public
release (URL, sha256, size, group). :func:`download_dataset` places them in ``DEST/NAME/`` in
the layout the readers expect (``rearm``: ``train/valid/test.npy`` + ``<modality>_feat.npy``).
For each file:

1. a file already in place is kept when its recorded size and sha256 match (no network);
2. bytes are written to ``<file>.part``; an existing ``.part`` is resumed with an HTTP range
   request ``Range: bytes=<part size>-`` (RFC 9110 §14.2); a server that ignores the range
   (status 200) restarts the file from byte 0, one that answers with another range has the
   ``.part`` discarded and the file fetched again;
3. a connection that drops mid-file is retried from the byte where it stopped, ``retries``
   times with exponential back-off; after that the ``.part`` is kept for the next run;
4. the finished ``.part`` is checked against the recorded size and sha256 (a mismatch
   deletes it: those bytes are wrong, resuming them cannot help) and moved into place with
   ``os.replace``, so ``DEST/NAME/<file>`` is either absent or complete and verified.

A file whose sha256 is not recorded (``null``) is downloaded unverified and its computed
sha256 is reported so it can be pinned in the catalogue. ``download.json`` in the dataset
folder records the URL and sha256 of every file placed there.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import urlsplit

from tqdm import tqdm

from recsys import io
from recsys.errors import ConfigError, DataError
from recsys.version import __version__

CATALOGUE = Path(__file__).with_name("downloads.yaml")
GROUPS = ("splits", "features")
CHUNK = 1 << 20


class DownloadError(DataError):
    """A file could not be fetched or failed verification; the message says what to do."""


class _Interrupted(Exception):
    """A transient failure (connection dropped, timeout, 5xx): worth another attempt."""


class _Offline(_Interrupted):
    """The host name does not resolve: no network, so retrying now cannot help."""


@dataclass(frozen=True)
class FileSpec:
    name: str
    url: str
    sha256: str | None
    size: int | None
    group: str


@dataclass(frozen=True)
class Fetched:
    path: Path
    sha256: str
    status: str  # "present", "downloaded" or "resumed"
    verified: bool


def load_catalogue(path: str | Path | None = None) -> dict[str, Any]:
    """Read and check a download catalogue (default: the one shipped with the package)."""
    path = Path(path) if path is not None else CATALOGUE
    data = io.load_yaml(path)
    datasets = data.get("datasets")
    if not isinstance(datasets, Mapping) or not datasets:
        raise ConfigError(f"download catalogue {path}: needs a non-empty 'datasets' mapping")
    for name, entry in datasets.items():
        files = entry.get("files") if isinstance(entry, Mapping) else None
        if not isinstance(files, list) or not files:
            raise ConfigError(f"download catalogue {path}: datasets.{name} needs a non-empty 'files' list")
        for index, item in enumerate(files):
            where = f"download catalogue {path}: datasets.{name}.files[{index}]"
            missing = [key for key in ("name", "url", "group") if not (isinstance(item, Mapping) and item.get(key))]
            if missing:
                raise ConfigError(f"{where} lacks {missing}")
            name_path = Path(str(item["name"]))
            if name_path.is_absolute() or ".." in name_path.parts:
                raise ConfigError(f"{where}: name '{item['name']}' must be a relative path inside the dataset folder")
            if item["group"] not in GROUPS:
                raise ConfigError(f"{where}: group '{item['group']}' must be one of {GROUPS}")
            sha = item.get("sha256")
            if sha is not None and (len(str(sha)) != 64 or any(c not in "0123456789abcdef" for c in str(sha))):
                raise ConfigError(f"{where}: sha256 must be 64 lowercase hex digits or null, got '{sha}'")
    return data


def dataset_files(catalogue: Mapping[str, Any], name: str, groups: Iterable[str] | None = None) -> list[FileSpec]:
    """The files of dataset ``name`` in the requested groups (all groups by default)."""
    datasets = catalogue["datasets"]
    if name not in datasets:
        raise ConfigError(f"no dataset '{name}' in the download catalogue; available: {', '.join(sorted(datasets))}")
    wanted = set(GROUPS if groups is None else groups)
    unknown = wanted - set(GROUPS)
    if unknown:
        raise ConfigError(f"unknown file group(s) {sorted(unknown)}; use {' or '.join(GROUPS)}")
    return [FileSpec(str(f["name"]), str(f["url"]), f.get("sha256"), f.get("size"), str(f["group"]))
            for f in datasets[name]["files"] if f["group"] in wanted]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_complete(spec: FileSpec, path: Path, digest: str, size: int) -> None:
    """Size and checksum against the catalogue; a mismatch deletes ``path``."""
    problem = None
    if spec.size is not None and size != int(spec.size):
        problem = f"size {size} bytes, expected {spec.size}"
    elif spec.sha256 is not None and digest != spec.sha256:
        problem = f"sha256 {digest}, expected {spec.sha256}"
    if problem:
        path.unlink(missing_ok=True)
        raise DownloadError(
            f"{spec.name} from {spec.url} failed verification ({problem}); the download was deleted. "
            f"Run the command again to fetch it afresh; if the mismatch persists the file changed "
            f"upstream: check it and update {CATALOGUE.name}")


def _content_range_start(header: str | None) -> int | None:
    """First byte of ``Content-Range: bytes START-END/TOTAL`` (None when absent or malformed)."""
    if not header or not header.startswith("bytes "):
        return None
    try:
        return int(header[6:].split("-", 1)[0])
    except ValueError:
        return None


def _range_total(header: str | None, size: int | None) -> int | None:
    """Total length from ``Content-Range: bytes */TOTAL`` (a 416 answer), else the catalogue size."""
    if header and "/" in header and header.rsplit("/", 1)[1].isdigit():
        return int(header.rsplit("/", 1)[1])
    return None if size is None else int(size)


def _open(spec: FileSpec, offset: int, timeout: float):
    headers = {"User-Agent": f"recsys/{__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(spec.url, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416:
            return exc
        if exc.code >= 500 or exc.code == 429:
            raise _Interrupted(f"HTTP {exc.code} {exc.reason}") from exc
        raise DownloadError(f"{spec.url} answered HTTP {exc.code} {exc.reason}: the file is not (or no longer) "
                            f"there; see the manual sources in {CATALOGUE.name}") from exc
    except urllib.error.URLError as exc:
        kind = _Offline if isinstance(exc.reason, socket.gaierror) else _Interrupted
        raise kind(_describe(exc.reason)) from exc
    except (OSError, http.client.HTTPException) as exc:
        raise _Interrupted(_describe(exc)) from exc


def _describe(reason: object) -> str:
    if isinstance(reason, socket.gaierror):
        return f"cannot resolve the host name ({reason})"
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return "the connection timed out"
    if isinstance(reason, ConnectionRefusedError):
        return "the connection was refused"
    return str(reason) or type(reason).__name__


def _attempt(spec: FileSpec, part: Path, timeout: float, progress: bool) -> None:
    """One HTTP request that appends to ``part`` from its current size until the file ends."""
    offset = part.stat().st_size if part.exists() else 0
    response = _open(spec, offset, timeout)
    with response:
        status = getattr(response, "status", None) or response.getcode()
        if status == 416:
            if offset and _range_total(response.headers.get("Content-Range"), spec.size) == offset:
                return
            part.unlink(missing_ok=True)
            raise _Interrupted("the server rejected the resume offset; restarting the file")
        start = 0 if status == 200 else _content_range_start(response.headers.get("Content-Range"))
        if start != offset:
            if status != 200:
                part.unlink(missing_ok=True)
                raise _Interrupted(f"the server answered a request for bytes {offset}- with the range starting at "
                                   f"{start}; restarting the file")
            offset = 0  # the server ignored the range and sent the whole file: start over
        length = response.headers.get("Content-Length")
        expected = offset + int(length) if length is not None and length.isdigit() else None
        total = expected if expected is not None else spec.size
        received = offset
        with open(part, "ab" if offset else "wb") as handle, \
                tqdm(total=total, initial=offset, unit="B", unit_scale=True, desc=spec.name, leave=False,
                     disable=not progress, file=sys.stderr) as bar:
            while True:
                try:
                    block = response.read(CHUNK)
                except (OSError, http.client.HTTPException) as exc:
                    raise _Interrupted(f"the connection dropped after {received} bytes ({_describe(exc)})") from exc
                if not block:
                    break
                handle.write(block)
                received += len(block)
                bar.update(len(block))
            handle.flush()
            os.fsync(handle.fileno())
        if expected is not None and received < expected:
            raise _Interrupted(f"the connection closed after {received} of {expected} bytes")


def fetch_file(spec: FileSpec, folder: Path, retries: int = 3, timeout: float = 60.0, backoff: float = 1.0,
               progress: bool = True) -> Fetched:
    """Place ``spec`` in ``folder`` (see the module docstring for the steps)."""
    target = folder / spec.name
    part = target.with_name(target.name + ".part")
    if target.exists():
        digest = sha256_file(target)
        size = target.stat().st_size
        if (spec.sha256 is not None and digest != spec.sha256) or (spec.size is not None and size != int(spec.size)):
            raise DownloadError(
                f"{target} exists but does not match the catalogue (sha256 {digest}, size {size}; expected "
                f"{spec.sha256}, {spec.size}); delete or move it and run the command again to download it")
        return Fetched(target, digest, "present", spec.sha256 is not None)
    target.parent.mkdir(parents=True, exist_ok=True)
    resumed = part.exists() and part.stat().st_size > 0
    attempts = 0
    while True:
        attempts += 1
        try:
            _attempt(spec, part, timeout, progress)
            break
        except _Interrupted as exc:
            resumed = resumed or (part.exists() and part.stat().st_size > 0)
            if isinstance(exc, _Offline) or attempts > retries:
                kept = part.stat().st_size if part.exists() else 0
                raise DownloadError(
                    f"cannot download {spec.name} from {urlsplit(spec.url).netloc}: {exc} (after {attempts} "
                    f"attempt(s)). Check the network connection (offline? behind a proxy? set HTTPS_PROXY) and "
                    f"run the same command again" + (f"; the {kept} bytes already received are kept in {part} "
                                                      f"and will be resumed" if kept else "")) from None
            time.sleep(backoff * 2 ** (attempts - 1))
    digest = sha256_file(part)
    _check_complete(spec, part, digest, part.stat().st_size)
    os.replace(part, target)
    return Fetched(target, digest, "resumed" if resumed else "downloaded", spec.sha256 is not None)


def download_dataset(name: str, dest: str | Path, groups: Iterable[str] | None = None,
                     catalogue: Mapping[str, Any] | str | Path | None = None, retries: int = 3,
                     timeout: float = 60.0, backoff: float = 1.0, progress: bool = True,
                     report: Callable[[str], None] = print) -> Path:
    """Fetch dataset ``name`` into ``dest/name``; returns that folder.

    ``groups`` limits the files (``splits``, ``features``); ``report`` receives one line per
    file. Files already fetched are kept, so an interrupted call is finished by calling again.
    """
    if not isinstance(catalogue, Mapping):
        catalogue = load_catalogue(catalogue)
    specs = dataset_files(catalogue, name, groups)
    folder = Path(dest).expanduser() / name
    records = []
    for spec in specs:
        fetched = fetch_file(spec, folder, retries=retries, timeout=timeout, backoff=backoff, progress=progress)
        note = "verified" if fetched.verified else "no checksum recorded, NOT verified"
        report(f"{fetched.status:<10} {fetched.path}  sha256 {fetched.sha256} ({note})")
        records.append({"name": spec.name, "url": spec.url, "sha256": fetched.sha256, "verified": fetched.verified})
    manifest = folder / "download.json"
    previous = {}
    if manifest.is_file():
        try:
            previous = {r["name"]: r for r in json.loads(manifest.read_text()).get("files", [])}
        except (ValueError, KeyError, TypeError, AttributeError):
            previous = {}
    previous.update({r["name"]: r for r in records})
    io.write_json(manifest, {"dataset": name, "layout": catalogue["datasets"][name].get("layout", "rearm"),
                             "files": sorted(previous.values(), key=lambda r: r["name"])})
    return folder


def manual_sources(catalogue: Mapping[str, Any] | None = None) -> str:
    """The catalogue's instructions for sources that need a browser (Google Drive, Dropbox)."""
    catalogue = catalogue if catalogue is not None else load_catalogue()
    return "\n".join(f"- {text.strip()}" for text in (catalogue.get("manual") or {}).values())
