"""Media is fetched only from Label Studio's own origin, public hosts and the MEDIA_ALLOWLIST: never from other
loopback ports, link-local (cloud metadata) or private addresses, also not through a redirect. The media
cache stays within its byte budget, least recently used files first. Real servers on 127.0.0.1 play Label
Studio and an internal service."""

from __future__ import annotations

import pytest

from tests.local_http import media_server_handler, serving
from utils.labelstudio.auth import LabelStudioCredentials
from utils.labelstudio.media import MediaResolver
from utils.labelstudio.outbound import OutboundPolicy
from utils.service.errors import MediaError
from utils.service.settings import Settings

BODY = b"media-bytes" * 50


@pytest.fixture()
def label_studio():
    handler = media_server_handler(BODY)
    with serving(handler) as url:
        yield url, handler.seen


@pytest.fixture()
def internal():
    """Another service on the same host as Label Studio (think Redis on 6379): never to be reached."""
    handler = media_server_handler(b"secret")
    with serving(handler) as url:
        yield url, handler.seen


def resolver(tmp_path, label_studio_url: str = "", allowlist=(), **kwargs) -> MediaResolver:
    creds = LabelStudioCredentials(label_studio_url, "key") if label_studio_url else None
    return MediaResolver(
        cache_dir=tmp_path / "cache",
        credentials=lambda: creds,
        policy=OutboundPolicy(allowlist),
        timeout_s=5,
        **kwargs,
    )


def test_label_studio_origin_is_fetched(tmp_path, label_studio) -> None:
    url, seen = label_studio
    assert resolver(tmp_path, url).resolve(f"{url}/data/upload/1/a.mp4").read_bytes() == BODY
    assert seen == [("/data/upload/1/a.mp4", "Token key")]


def test_other_port_on_label_studio_host_is_refused(tmp_path, label_studio, internal) -> None:
    ls_url, _ = label_studio
    internal_url, internal_seen = internal
    with pytest.raises(MediaError, match="non-public address 127.0.0.1"):
        resolver(tmp_path, ls_url).resolve(f"{internal_url}/data.csv")
    assert internal_seen == []
    assert not list((tmp_path / "cache").rglob("*.csv"))


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam/",
        "http://10.1.2.3/clip.mp4",
        "http://192.168.0.10:8000/clip.mp4",
        "http://[::1]:6379/",
        "http://[::ffff:127.0.0.1]:6379/",
        "http://localhost:6379/x.csv",  # a name is resolved and its addresses checked
        "http://0.0.0.0:9090/x.csv",
    ],
)
def test_private_loopback_and_link_local_addresses_are_refused(tmp_path, url) -> None:
    with pytest.raises(MediaError, match="non-public address"):
        resolver(tmp_path).resolve(url)


@pytest.mark.parametrize("url", ["ftp://example.org/a.mp4", "gopher://127.0.0.1:70/", "http:///nohost"])
def test_only_http_and_https_urls_are_fetched(url) -> None:
    with pytest.raises(MediaError, match="only http and https URLs"):
        OutboundPolicy().check(url)


def test_every_redirect_hop_is_checked(tmp_path, label_studio, internal) -> None:
    ls_url, ls_seen = label_studio
    internal_url, internal_seen = internal
    with pytest.raises(MediaError, match="non-public address"):
        resolver(tmp_path, ls_url).resolve(f"{ls_url}/redirect?to={internal_url}/secret.mp4")
    assert [path for path, _ in ls_seen] == [f"/redirect?to={internal_url}/secret.mp4"]
    assert internal_seen == []
    # a redirect that stays on Label Studio's origin is followed, with the key
    media = resolver(tmp_path, ls_url).resolve(f"{ls_url}/redirect?to=/data/upload/b.mp4")
    assert media.read_bytes() == BODY and ls_seen[-1] == ("/data/upload/b.mp4", "Token key")


@pytest.mark.parametrize("entry", ["origin", "127.0.0.0/8", "127.0.0.1"])
def test_allowlist_opens_an_origin_or_a_network(tmp_path, internal, entry) -> None:
    internal_url, internal_seen = internal
    allowed = internal_url if entry == "origin" else entry
    path = resolver(tmp_path, allowlist=[allowed]).resolve(f"{internal_url}/data.csv")
    assert path.read_bytes() == b"secret" and internal_seen == [("/data.csv", None)]


def test_allowlisted_host_name_is_not_resolved_again(tmp_path, internal) -> None:
    internal_url, _ = internal
    url = internal_url.replace("127.0.0.1", "localhost")
    assert resolver(tmp_path, allowlist=["localhost"]).resolve(f"{url}/x.csv").read_bytes() == b"secret"


def test_bad_allowlist_entry_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="MEDIA_ALLOWLIST"):
        OutboundPolicy(["ftp://files.example.org"])


def test_media_cache_evicts_least_recently_used_files(tmp_path, label_studio) -> None:
    url, seen = label_studio
    media = resolver(tmp_path, url, cache_max_bytes=2500)
    first = media.resolve(f"{url}/size/1000?a")
    second = media.resolve(f"{url}/size/1000?b")
    assert media.resolve(f"{url}/size/1000?a") == first  # a cache hit marks it recently used
    third = media.resolve(f"{url}/size/1000?c")
    assert first.is_file() and third.is_file() and not second.exists()
    assert len(seen) == 3
    assert sum(p.stat().st_size for p in (tmp_path / "cache" / "media").iterdir()) <= 2500


def test_new_settings_are_read_from_the_environment(tmp_path) -> None:
    settings = Settings.from_env(
        {
            "MODEL_DIR": str(tmp_path),
            "MEDIA_ALLOWLIST": "http://minio:9000, 10.0.0.0/8,",
            "MEDIA_CACHE_MAX_BYTES": "1000",
            "MAX_REQUEST_BYTES": "2000",
        }
    )
    assert settings.media_allowlist == ("http://minio:9000", "10.0.0.0/8")
    assert (settings.media_cache_max_bytes, settings.max_request_bytes) == (1000, 2000)
    policy = OutboundPolicy(settings.media_allowlist)
    policy.check("http://minio:9000/bucket/a.mp4")
    policy.check("http://10.1.2.3/a.mp4")
