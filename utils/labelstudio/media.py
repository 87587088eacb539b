"""Turning a task's media reference into a local file: Label Studio URLs, http(s), cloud URIs via
Label Studio's presign endpoint, and local paths under configured roots. Downloads go only where the outbound
policy allows (every redirect hop checked), are bounded in size and time, and cached within a byte budget."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, unquote, urljoin, urlparse

import requests

from utils.labelstudio.auth import LabelStudioCredentials
from utils.labelstudio.outbound import OutboundPolicy, origin_of
from utils.service.disk_budget import evict_least_recently_used, touch
from utils.service.errors import MediaError
from utils.service.files import file_inside, resolve_inside, write_atomic

logger = logging.getLogger(__name__)

CLOUD_SCHEMES = ("s3:", "gs:", "azure-blob:")
CHUNK = 1 << 20
MAX_REDIRECTS = 5


class MediaResolver:
    """Resolves media for one project. `credentials` returns, at each download, the Label Studio that owns
    the tasks (it may become known after the resolver is built, when /setup brings a hostname and token)."""

    def __init__(
        self,
        cache_dir: Path,
        credentials: Callable[[], LabelStudioCredentials | None] = lambda: None,
        local_roots: tuple[Path, ...] = (),
        local_files_document_root: Path | None = None,
        max_bytes: int = 2 * 1024**3,
        timeout_s: float = 60.0,
        policy: OutboundPolicy | None = None,
        trusted_origins: Callable[[], tuple[str, ...]] = tuple,
        cache_max_bytes: int = 10 * 1024**3,
    ):
        self.cache_dir = cache_dir
        self.credentials = credentials
        self.policy = policy or OutboundPolicy()
        self.trusted_origins = trusted_origins
        self.cache_max_bytes = cache_max_bytes
        self.local_roots = tuple(
            root.resolve() for root in local_roots
        )  # symlinked roots compare as real paths
        self.local_files_document_root = (
            local_files_document_root.resolve() if local_files_document_root else None
        )
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    def resolve(self, reference: str, task_id: int | None = None) -> Path:
        """A readable local path for `reference`, or MediaError saying which reference failed and why."""
        if not isinstance(reference, str) or not reference.strip():
            raise MediaError(f"media reference {reference!r} is empty or not a string")
        reference = reference.strip()
        if reference.startswith(CLOUD_SCHEMES):
            return self._download(self._presign_url(reference, task_id), reference)
        if reference.startswith("/data/"):
            local = self._local_files_path(reference)
            if local is not None:
                return local
            return self._download(self._label_studio_url(reference), reference)
        parsed = urlparse(reference)
        if parsed.scheme in ("http", "https"):
            return self._download(reference, reference)
        if parsed.scheme == "file":
            return self._local_path(Path(unquote(parsed.path)), reference)
        if parsed.scheme == "":
            return self._local_path(Path(reference), reference)
        raise MediaError(f"media {reference!r}: unsupported URL scheme {parsed.scheme!r}")

    # --- local files -----------------------------------------------------------------------
    def _local_path(self, path: Path, reference: str) -> Path:
        path = path.expanduser()
        if not path.is_absolute():  # a name relative to a media root, never to the working directory
            found = [root / path for root in self.local_roots if (root / path).is_file()]
            path = found[0] if found else (self.local_roots[0] / path if self.local_roots else path)
        try:
            return file_inside(path, self.local_roots)
        except ValueError as exc:
            raise MediaError(
                f"media {reference!r}: {exc}; local paths are read under MEDIA_ROOTS only"
            ) from exc

    def _local_files_path(self, reference: str) -> Path | None:
        """`/data/local-files/?d=x` read straight from disk when Label Studio's document root is shared."""
        root = self.local_files_document_root
        if root is None or not reference.startswith("/data/local-files/"):
            return None
        relative = parse_qs(urlparse(reference).query).get("d", [""])[0]
        candidate = resolve_inside(root / unquote(relative), (root,))
        return candidate if candidate is not None and candidate.is_file() else None

    # --- remote files ----------------------------------------------------------------------
    def _label_studio_url(self, reference: str) -> str:
        credentials = self.credentials()
        if credentials is None or not credentials.url:
            raise MediaError(
                f"media {reference!r} is relative to Label Studio, but LABEL_STUDIO_URL is not set "
                "and /setup gave no hostname"
            )
        return f"{credentials.url}{reference}"

    def _presign_url(self, reference: str, task_id: int | None) -> str:
        if task_id is None:
            raise MediaError(f"media {reference!r}: a cloud URI needs the task id to presign")
        encoded = base64.urlsafe_b64encode(reference.encode()).decode()
        return self._label_studio_url(f"/tasks/{task_id}/presign/?fileuri={encoded}")

    def _headers_for(self, url: str) -> dict[str, str]:
        creds = self.credentials()
        if creds is None or not creds.url or origin_of(url) != origin_of(creds.url):
            return {}  # never send our Label Studio key to another origin
        return creds.headers()

    def _download(self, url: str, reference: str) -> Path:
        suffix = Path(urlparse(reference).path).suffix[:10] or ".bin"
        key = hashlib.sha256(reference.encode()).hexdigest()[:32]
        target = self.cache_dir / "media" / f"{key}{suffix}"
        if target.is_file() and target.stat().st_size > 0:
            touch(target)
            return target
        logger.info("downloading media %s", reference)
        try:
            with self._open(url, reference) as response:
                declared = int(response.headers.get("Content-Length") or 0)
                if declared > self.max_bytes:
                    raise MediaError(f"media {reference!r}: {declared} bytes exceeds MEDIA_MAX_BYTES")
                write_atomic(target, lambda tmp: self._stream_to(response, tmp, reference))
        except requests.RequestException as exc:
            raise MediaError(f"media {reference!r}: download failed: {exc}") from exc
        for path in evict_least_recently_used(target.parent, "[!.]*", self.cache_max_bytes, keep=target):
            logger.info("media cache: evicted %s", path.name)
        return target

    def _open(self, url: str, reference: str) -> requests.Response:
        """The response at the end of `url`'s redirects, each hop checked against the outbound policy."""
        requested = url  # named in errors: a later hop may carry a presigned URL's signature
        for _ in range(MAX_REDIRECTS + 1):
            creds = self.credentials()
            trusted = (*self.trusted_origins(), *((creds.url,) if creds is not None else ()))
            try:
                self.policy.check(url, trusted)
            except MediaError as exc:
                raise MediaError(f"media {reference!r}: refused: {exc}") from exc
            response = requests.get(
                url,
                headers=self._headers_for(url),
                stream=True,
                timeout=self.timeout_s,
                allow_redirects=False,
            )
            if response.is_redirect and response.headers.get("Location"):
                response.close()
                url = urljoin(url, response.headers["Location"])
                continue
            if response.status_code >= 400:
                response.close()
                raise MediaError(f"media {reference!r}: HTTP {response.status_code} from {requested}")
            return response
        raise MediaError(f"media {reference!r}: more than {MAX_REDIRECTS} redirects")

    def _stream_to(self, response: requests.Response, path: Path, reference: str) -> None:
        written = 0
        with open(path, "wb") as handle:
            for chunk in response.iter_content(CHUNK):
                written += len(chunk)
                if written > self.max_bytes:
                    raise MediaError(f"media {reference!r}: larger than MEDIA_MAX_BYTES")
                handle.write(chunk)
        if written == 0:
            raise MediaError(f"media {reference!r}: empty response")
        os.utime(path)
