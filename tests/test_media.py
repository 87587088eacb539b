"""Media references become local files: Label Studio URLs with auth, http(s) with limits, cloud URIs via
presign, local paths only under configured roots. A real HTTP server on 127.0.0.1 plays Label Studio."""

from __future__ import annotations

import base64
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fixtures.app_factory import VIDEO_CONFIG, make_app
from utils.labelstudio.auth import LabelStudioCredentials
from utils.labelstudio.media import MediaResolver
from utils.labelstudio.outbound import OutboundPolicy
from utils.service.errors import MediaError

BODY = b"\x00\x01video-bytes" * 100


class FakeLabelStudio(BaseHTTPRequestHandler):
    seen: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        FakeLabelStudio.seen.append((self.path, self.headers.get("Authorization")))
        if self.path.startswith("/tasks/7/presign/"):
            self.send_response(302)
            self.send_header("Location", "/signed/object.mp4")
            self.end_headers()
            return
        if self.path == "/missing.mp4":
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def do_POST(self) -> None:  # noqa: N802
        FakeLabelStudio.seen.append((self.path, None))
        payload = b'{"access": "short-lived"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeLabelStudio)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    FakeLabelStudio.seen = []
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def resolver(tmp_path, url: str = "", key: str = "", **kwargs) -> MediaResolver:
    creds = LabelStudioCredentials(url, key) if url else None
    return MediaResolver(cache_dir=tmp_path / "cache", credentials=lambda: creds, **kwargs)


def test_label_studio_upload_is_downloaded_with_legacy_token(tmp_path, server) -> None:
    path = resolver(tmp_path, server, "abc123").resolve("/data/upload/1/clip.mp4")
    assert path.read_bytes() == BODY and path.suffix == ".mp4"
    assert FakeLabelStudio.seen == [("/data/upload/1/clip.mp4", "Token abc123")]
    resolver(tmp_path, server, "abc123").resolve("/data/upload/1/clip.mp4")
    assert len(FakeLabelStudio.seen) == 1  # cached


def test_personal_access_token_is_exchanged_for_bearer(tmp_path, server) -> None:
    resolver(tmp_path, server, "aaa.bbb.ccc").resolve("/data/upload/1/clip.mp4")
    assert ("/api/token/refresh/", None) in FakeLabelStudio.seen
    assert ("/data/upload/1/clip.mp4", "Bearer short-lived") in FakeLabelStudio.seen


def test_key_is_not_sent_to_other_hosts(tmp_path, server) -> None:
    other = server.replace("127.0.0.1", "localhost")
    media = resolver(tmp_path, server, "abc123", policy=OutboundPolicy(["localhost"]))
    media.resolve(f"{other}/public/clip.mp4")
    assert FakeLabelStudio.seen == [("/public/clip.mp4", None)]


def test_cloud_uri_goes_through_presign(tmp_path, server) -> None:
    path = resolver(tmp_path, server, "abc123").resolve("s3://bucket/clip.mp4", task_id=7)
    encoded = base64.urlsafe_b64encode(b"s3://bucket/clip.mp4").decode()
    assert FakeLabelStudio.seen[0] == (f"/tasks/7/presign/?fileuri={encoded}", "Token abc123")
    assert path.read_bytes() == BODY


def test_size_limit_is_enforced(tmp_path, server) -> None:
    with pytest.raises(MediaError, match="MEDIA_MAX_BYTES"):
        resolver(tmp_path, server, "k", max_bytes=10).resolve("/data/upload/1/big.mp4")
    assert not list((tmp_path / "cache").rglob("*.mp4"))


def test_errors_name_the_url_and_reason(tmp_path, server) -> None:
    allowed = OutboundPolicy([server, "http://127.0.0.1:9"])
    with pytest.raises(MediaError, match=r"missing\.mp4.*HTTP 404"):
        resolver(tmp_path, policy=allowed).resolve(f"{server}/missing.mp4")
    with pytest.raises(MediaError, match="LABEL_STUDIO_URL"):
        resolver(tmp_path).resolve("/data/upload/1/clip.mp4")
    with pytest.raises(MediaError, match="download failed"):
        resolver(tmp_path, timeout_s=1, policy=allowed).resolve("http://127.0.0.1:9/clip.mp4")


def test_local_paths_only_under_media_roots(tmp_path) -> None:
    inside = tmp_path / "media" / "clip.mp4"
    inside.parent.mkdir()
    inside.write_bytes(BODY)
    allowed = resolver(tmp_path, local_roots=(tmp_path / "media",))
    assert allowed.resolve(str(inside)) == inside
    assert allowed.resolve(f"file://{inside}") == inside
    with pytest.raises(MediaError, match="MEDIA_ROOTS"):
        allowed.resolve(str(tmp_path / "media" / ".." / "secret"))
    with pytest.raises(MediaError, match="MEDIA_ROOTS"):
        resolver(tmp_path).resolve("/etc/passwd")


def test_local_files_read_from_shared_document_root(tmp_path) -> None:
    root = tmp_path / "docroot"
    (root / "videos").mkdir(parents=True)
    (root / "videos" / "a b.mp4").write_bytes(BODY)
    media = resolver(tmp_path, local_files_document_root=root)
    assert media.resolve("/data/local-files/?d=videos/a%20b.mp4") == root / "videos" / "a b.mp4"
    with pytest.raises(MediaError):  # traversal out of the document root falls through to Label Studio
        media.resolve("/data/local-files/?d=../../etc/passwd")


def test_symlinked_media_root_still_allows_its_files(tmp_path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "clip.mp4").write_bytes(BODY)
    (tmp_path / "link").symlink_to(real)
    media = resolver(tmp_path, local_roots=(tmp_path / "link",))
    assert media.resolve(str(tmp_path / "link" / "clip.mp4")) == real / "clip.mp4"


def test_setup_credentials_reach_models_built_before_setup(settings, server) -> None:
    client = make_app(settings).test_client()
    task = {"id": 1, "data": {"video": "/data/upload/1/clip.mp4"}}
    payload = {"tasks": [task], "project": "1.1", "label_config": VIDEO_CONFIG}
    assert client.post("/predict", json=payload).status_code == 200  # no Label Studio known yet: empty result
    assert FakeLabelStudio.seen == []
    setup = {"project": "1.1", "schema": VIDEO_CONFIG, "hostname": server, "access_token": "abc123"}
    assert client.post("/setup", json=setup).status_code == 200
    assert client.post("/predict", json=payload).status_code == 200
    assert FakeLabelStudio.seen == [("/data/upload/1/clip.mp4", "Token abc123")]


def test_relative_name_is_read_under_media_roots_not_the_working_directory(tmp_path, monkeypatch) -> None:
    root = tmp_path / "media"
    (root / "clips").mkdir(parents=True)
    (root / "clips" / "a.mp4").write_bytes(BODY)
    monkeypatch.chdir(tmp_path)  # a same-named file here must not matter
    media = resolver(tmp_path, local_roots=(tmp_path / "elsewhere", root))
    assert media.resolve("clips/a.mp4") == root / "clips" / "a.mp4"
    with pytest.raises(MediaError, match="MEDIA_ROOTS"):
        media.resolve("../media/../../etc/passwd")
