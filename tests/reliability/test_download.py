"""recsys data download: verified, resumable, atomic downloads against a local HTTP server."""
from __future__ import annotations

import hashlib
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from recsys.cli import main
from recsys.data.download import DownloadError, FileSpec, dataset_files, download_dataset, fetch_file, load_catalogue


class _Server:
    """Serves ``files`` (path -> bytes) on 127.0.0.1 with HTTP range support.

    ``cut[path] = n`` makes the next ``n`` requests of ``path`` send the full Content-Length
    but only half of the remaining bytes before closing the connection; paths in
    ``no_range`` ignore Range headers (status 200, whole file).
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.no_range: set[str] = set()
        self.wrong_range: set[str] = set()
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                range_header = self.headers.get("Range")
                server.requests.append((self.path, range_header))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                if range_header and self.path not in server.no_range:
                    start = int(range_header.split("=")[1].split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    if self.path in server.wrong_range:
                        start = 0
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                payload = body[start:]
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if server.cut.get(self.path, 0) > 0:
                    server.cut[self.path] -= 1
                    self.wfile.write(payload[: len(payload) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def add(self, path: str, body: bytes) -> str:
        self.files[path] = body
        return self.base + path

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = _Server()
    yield srv
    srv.close()


def _blob(n: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size=n, dtype=np.uint8).tobytes()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _spec(url: str, body: bytes | None, name: str = "train.npy", group: str = "splits") -> FileSpec:
    return FileSpec(name, url, _sha(body) if body is not None else None, len(body) if body is not None else None, group)


def _catalogue(entries: list[FileSpec]) -> dict:
    return {"datasets": {"toy": {"layout": "rearm", "files": [
        {"name": s.name, "url": s.url, "sha256": s.sha256, "size": s.size, "group": s.group} for s in entries]}}}


def test_download_verifies_places_atomically_and_skips_present_files(server, tmp_path):
    train, feat = _blob(300_000, 0), _blob(70_000, 1)
    specs = [_spec(server.add("/train.npy", train), train),
             _spec(server.add("/text_feat.npy", feat), feat, "text_feat.npy", "features")]
    lines: list[str] = []
    folder = download_dataset("toy", tmp_path, catalogue=_catalogue(specs), progress=False, report=lines.append)
    assert folder == tmp_path / "toy"
    assert (folder / "train.npy").read_bytes() == train
    assert (folder / "text_feat.npy").read_bytes() == feat
    assert not list(folder.glob("*.part"))
    manifest = json.loads((folder / "download.json").read_text())
    recorded = {f["name"]: f["sha256"] for f in manifest["files"]}
    assert recorded == {"train.npy": _sha(train), "text_feat.npy": _sha(feat)}
    assert all(line.startswith("downloaded") and "verified" in line for line in lines)

    n_requests = len(server.requests)
    lines.clear()
    download_dataset("toy", tmp_path, catalogue=_catalogue(specs), progress=False, report=lines.append)
    assert len(server.requests) == n_requests, "files already in place must not be fetched again"
    assert all(line.startswith("present") for line in lines)


def test_only_selects_groups(server, tmp_path):
    train, feat = _blob(1000, 2), _blob(500, 3)
    specs = [_spec(server.add("/a", train), train), _spec(server.add("/b", feat), feat, "image_feat.npy", "features")]
    folder = download_dataset("toy", tmp_path, groups=["splits"], catalogue=_catalogue(specs), progress=False,
                              report=lambda _: None)
    assert sorted(p.name for p in folder.iterdir()) == ["download.json", "train.npy"]


def test_cut_connection_keeps_part_and_next_run_resumes_with_range(server, tmp_path):
    body = _blob(400_000, 4)
    spec = _spec(server.add("/train.npy", body), body)
    server.cut["/train.npy"] = 1
    with pytest.raises(DownloadError, match="will be resumed") as info:
        fetch_file(spec, tmp_path, retries=0, backoff=0, progress=False)
    assert "Traceback" not in str(info.value)
    part = tmp_path / "train.npy.part"
    assert not (tmp_path / "train.npy").exists(), "an incomplete file must never appear under its final name"
    assert part.read_bytes() == body[: len(body) // 2]

    fetched = fetch_file(spec, tmp_path, retries=0, backoff=0, progress=False)
    assert fetched.status == "resumed" and fetched.verified
    assert server.requests[-1] == ("/train.npy", f"bytes={len(body) // 2}-")
    assert (tmp_path / "train.npy").read_bytes() == body
    assert not part.exists()


def test_retries_resume_within_one_call(server, tmp_path):
    body = _blob(200_000, 5)
    spec = _spec(server.add("/x.npy", body), body, "x.npy")
    server.cut["/x.npy"] = 2
    fetched = fetch_file(spec, tmp_path, retries=3, backoff=0, progress=False)
    assert fetched.path.read_bytes() == body
    ranges = [r for p, r in server.requests if p == "/x.npy"]
    assert ranges == [None, f"bytes={len(body) // 2}-", f"bytes={len(body) // 2 + len(body) // 4}-"]


def test_bad_checksum_is_an_error_and_leaves_nothing(server, tmp_path):
    body = _blob(50_000, 6)
    spec = FileSpec("train.npy", server.add("/train.npy", body), _sha(b"other bytes"), None, "splits")
    with pytest.raises(DownloadError, match=f"sha256 {_sha(body)}, expected {_sha(b'other bytes')}"):
        fetch_file(spec, tmp_path, retries=0, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_wrong_size_is_an_error(server, tmp_path):
    body = _blob(1000, 7)
    spec = FileSpec("train.npy", server.add("/train.npy", body), None, 999, "splits")
    with pytest.raises(DownloadError, match="size 1000 bytes, expected 999"):
        fetch_file(spec, tmp_path, retries=0, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    body = _blob(30_000, 8)
    spec = _spec(server.add("/f.npy", body), body, "f.npy")
    server.no_range.add("/f.npy")
    (tmp_path / "f.npy.part").write_bytes(b"stale bytes from another file")
    fetched = fetch_file(spec, tmp_path, retries=0, progress=False)
    assert fetched.path.read_bytes() == body


def test_answer_from_another_offset_restarts_the_file(server, tmp_path):
    body = _blob(30_000, 12)
    spec = _spec(server.add("/f.npy", body), body, "f.npy")
    server.wrong_range.add("/f.npy")
    (tmp_path / "f.npy.part").write_bytes(body[:1000])
    fetched = fetch_file(spec, tmp_path, retries=1, backoff=0, progress=False)
    assert fetched.path.read_bytes() == body
    assert server.requests == [("/f.npy", "bytes=1000-"), ("/f.npy", None)]


def test_complete_part_is_finished_after_416(server, tmp_path):
    body = _blob(5000, 9)
    spec = _spec(server.add("/f.npy", body), body, "f.npy")
    (tmp_path / "f.npy.part").write_bytes(body)
    fetched = fetch_file(spec, tmp_path, retries=0, progress=False)
    assert fetched.path.read_bytes() == body and server.requests == [("/f.npy", f"bytes={len(body)}-")]


def test_unknown_checksum_downloads_unverified_and_reports_it(server, tmp_path):
    body = _blob(10_000, 10)
    spec = _spec(server.add("/image_feat.npy", body), None, "image_feat.npy", "features")
    lines: list[str] = []
    download_dataset("toy", tmp_path, catalogue=_catalogue([spec]), progress=False, report=lines.append)
    assert lines == [f"downloaded {tmp_path / 'toy' / 'image_feat.npy'}  sha256 {_sha(body)} "
                     f"(no checksum recorded, NOT verified)"]


def test_existing_file_that_differs_is_not_overwritten(server, tmp_path):
    body = _blob(1000, 11)
    spec = _spec(server.add("/train.npy", body), body)
    (tmp_path / "train.npy").write_bytes(b"user's own file")
    with pytest.raises(DownloadError, match="exists but does not match"):
        fetch_file(spec, tmp_path, retries=0, progress=False)
    assert (tmp_path / "train.npy").read_bytes() == b"user's own file" and server.requests == []


def test_http_404_is_not_retried(server, tmp_path):
    spec = FileSpec("train.npy", server.base + "/missing", None, None, "splits")
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch_file(spec, tmp_path, retries=3, backoff=0, progress=False)
    assert len(server.requests) == 1


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_offline_gives_a_clear_cli_error_without_traceback(tmp_path, capsys):
    url = f"http://127.0.0.1:{_closed_port()}/train.npy"
    catalogue = tmp_path / "catalogue.yaml"
    catalogue.write_text(json.dumps(_catalogue([FileSpec("train.npy", url, None, None, "splits")])))
    code = main(["data", "download", "toy", "--dest", str(tmp_path / "data"), "--catalogue", str(catalogue),
                 "--retries", "0"])
    err = capsys.readouterr().err
    assert code == 2
    assert "cannot download train.npy from 127.0.0.1" in err and "network connection" in err
    assert "Traceback" not in err
    assert not (tmp_path / "data" / "toy" / "train.npy").exists()


def test_cli_download_then_reader_sees_the_dataset(server, tmp_path, capsys):
    from recsys.data.loading import load_dataset

    train = np.array([[0, 0, 1, 2], [0, 1, 2, 3]], dtype=np.int64)
    valid = np.array([[0, 1], [2, 0]], dtype=np.int64)
    test = np.array([[1, 2], [1, 0]], dtype=np.int64)
    specs = []
    for split, array in (("train", train), ("valid", valid), ("test", test)):
        path = tmp_path / f"src_{split}.npy"
        np.save(path, array)
        body = path.read_bytes()
        specs.append(_spec(server.add(f"/{split}.npy", body), body, f"{split}.npy"))
    catalogue = tmp_path / "catalogue.yaml"
    catalogue.write_text(json.dumps(_catalogue(specs)))
    assert main(["data", "download", "toy", "--dest", str(tmp_path / "data"), "--catalogue", str(catalogue)]) == 0
    out = capsys.readouterr().out
    assert "users         3" in out and "items         4" in out
    ds = load_dataset({"format": "auto", "path": str(tmp_path / "data" / "toy")})
    np.testing.assert_array_equal(ds.train, train)


def test_shipped_catalogue_lists_the_three_datasets_with_pinned_splits():
    catalogue = load_catalogue()
    assert sorted(catalogue["datasets"]) == ["baby", "clothing", "sports"]
    for name in ("baby", "sports", "clothing"):
        splits = dataset_files(catalogue, name, ["splits"])
        assert [s.name for s in splits] == ["train.npy", "valid.npy", "test.npy"]
        assert all(s.sha256 and s.size and s.url.startswith("https://") for s in splits)
        assert {s.name for s in dataset_files(catalogue, name, ["features"])} == {"image_feat.npy", "text_feat.npy"}


@pytest.mark.integration
def test_catalogue_checksums_match_the_shared_splits(shared_data):
    from recsys.data.download import sha256_file

    for name in ("baby", "sports", "clothing"):
        for spec in dataset_files(load_catalogue(), name, ["splits"]):
            path = shared_data / "amazon" / name / spec.name
            assert path.stat().st_size == spec.size
            assert sha256_file(path) == spec.sha256, path


def test_catalogue_errors_name_the_entry(tmp_path):
    from recsys.errors import ConfigError

    bad = tmp_path / "c.yaml"
    bad.write_text(json.dumps({"datasets": {"toy": {"files": [
        {"name": "../escape.npy", "url": "http://x", "group": "splits"}]}}}))
    with pytest.raises(ConfigError, match=r"datasets.toy.files\[0\].*relative path"):
        load_catalogue(bad)
    with pytest.raises(ConfigError, match="no dataset 'nope'.*baby"):
        dataset_files(load_catalogue(), "nope")
