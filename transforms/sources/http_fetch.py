"""Fetch a URL that a reader reads once, front to back: one home for timeouts, retries and the token.

``http(s)://`` goes through ``requests`` (``stream=True``), everything else (local paths, ``gs://``,
any fsspec filesystem) through fsspec. A failure is a ``FetchError`` with a reject reason and
whether it is transient:

- transient (reason ``archive_unreadable``): a connect or read timeout, a connection reset, HTTP 429
  or 5xx (or 403 from a rate limit), a body cut short (fewer bytes than its Content-Length, a
  chunked body that stops), any other I/O error of a non-HTTP filesystem;
- permanent: HTTP 404/410 (``archive_not_found``; a local file that does not exist too), 401/403
  (``archive_forbidden``), another 4xx (``archive_http_<code>``), too many redirects
  (``archive_too_many_redirects``), a URL no filesystem reads (``archive_bad_url``).

``retrying`` runs a whole attempt again from its start after a transient failure, with exponential
backoff and full jitter (Retry-After honoured within ``backoff_max_s``). The loop is written here
because no installed library fits: urllib3's ``Retry`` (and requests' adapters) retry only until
the response headers arrive, never a body read that fails half-way through an archive, and
whatever the caller made of the half-read body (members, withheld documents, counts) has to be
thrown away with it, which only the caller's attempt function can do.

The GitHub token is read from an environment variable or a file on the worker (``Fetcher.start``
in ``DoFn.setup``), so it is never pickled into the job graph; it is sent only to the token hosts,
and only on the first host of a request: redirects are followed by hand, and a redirect to any
other host goes there without it. No detail or message built here holds it (URLs are shown
without their query string, where signed redirect URLs carry theirs).
"""

from __future__ import annotations

import dataclasses
import os
import random
import tempfile
import time
import urllib.parse
from typing import Callable, Optional, TypeVar

from transforms.sources.gzip_stream import StreamError

DEFAULT_TOKEN_HOSTS = ("github.com", "api.github.com", "codeload.github.com")
UNREADABLE = "archive_unreadable"
NOT_FOUND = "archive_not_found"
_REDIRECTS = (301, 302, 303, 307, 308)
_CHUNK = 1 << 20
T = TypeVar("T")


class FetchError(StreamError):
    """A URL could not be read: ``reason`` is the reject reason; ``transient`` says a retry may work."""

    def __init__(self, reason: str, detail: str, transient: bool = False,
                 retry_after: Optional[float] = None):
        super().__init__(reason, detail)
        self.transient = transient
        self.retry_after = retry_after


@dataclasses.dataclass(frozen=True)
class FetchPolicy:
    """How a URL is fetched: retries, backoff, timeouts and where the token comes from and goes.

    Holds the token's source (an environment variable's name, a file's path), never its value, so
    it can be pickled and written to a manifest.
    """

    retries: int = 5  # attempts after the first one, for transient failures only
    backoff_s: float = 1.0  # first backoff's upper bound; doubles per retry (full jitter)
    backoff_max_s: float = 60.0  # bound on any one wait, Retry-After included
    connect_timeout_s: float = 60.0
    read_timeout_s: float = 60.0  # silence between two reads of the body
    max_redirects: int = 5
    token_env: Optional[str] = None
    token_file: Optional[str] = None
    token_hosts: tuple = DEFAULT_TOKEN_HOSTS

    def delay(self, retry: int, retry_after: Optional[float] = None) -> float:
        """Seconds to wait before retry ``retry`` (0-based): full jitter, or the server's Retry-After."""
        bound = min(self.backoff_max_s, self.backoff_s * (2 ** retry))
        wait = random.uniform(0.0, bound)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.backoff_max_s))
        return wait


def read_token(policy: FetchPolicy) -> Optional[str]:
    """The token named by the policy (env var, else file through fsspec so ``gs://`` works), or None.

    Raises ValueError naming the variable or file, never a value.
    """
    if policy.token_env:
        value = os.environ.get(policy.token_env, "").strip()
        if not value:
            raise ValueError(f"--github_token_env: the environment variable {policy.token_env} is not set")
        return value
    if policy.token_file:
        import fsspec

        try:
            with fsspec.open(policy.token_file, "rt") as handle:
                value = handle.read().strip()
        except (OSError, ValueError, ImportError) as err:
            raise ValueError(f"--github_token_file: cannot read {policy.token_file} ({type(err).__name__})") from None
        if not value:
            raise ValueError(f"--github_token_file: {policy.token_file} is empty")
        return value
    return None


def shown_url(url: str) -> str:
    """A URL for messages: scheme, host and path, no query or credentials."""
    parts = urllib.parse.urlsplit(url)
    if not parts.scheme:
        return url
    return urllib.parse.urlunsplit((parts.scheme, parts.hostname or "", parts.path, "", ""))


def is_http(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))


def _host(url: str) -> str:
    return (urllib.parse.urlsplit(url).hostname or "").lower()


def _retry_after(response) -> Optional[float]:
    """Seconds from Retry-After (delta form) or GitHub's X-RateLimit-Reset, when given."""
    value = response.headers.get("Retry-After", "")
    if value.strip().isdigit():
        return float(value.strip())
    reset = response.headers.get("X-RateLimit-Reset", "")
    if response.headers.get("X-RateLimit-Remaining") == "0" and reset.strip().isdigit():
        return max(0.0, float(reset) - time.time())
    return None


def _status_error(response, url: str) -> FetchError:
    """The FetchError of a response that is not 2xx (redirects are handled before)."""
    code = response.status_code
    where = f"HTTP {code} from {shown_url(url)}"
    rate_limited = code == 403 and ("Retry-After" in response.headers
                                    or response.headers.get("X-RateLimit-Remaining") == "0")
    if code == 429 or code >= 500 or rate_limited:
        return FetchError(UNREADABLE, where, transient=True, retry_after=_retry_after(response))
    if code in (404, 410):
        return FetchError(NOT_FOUND, where)
    if code in (401, 403):
        return FetchError("archive_forbidden", where)
    return FetchError(f"archive_http_{code}", where)


class _HttpBody:
    """The body of a streamed response, read as a file; an I/O failure mid-body is transient."""

    def __init__(self, response, url: str):
        self._response = response
        self._url = url
        self._expected = response.headers.get("Content-Length")
        self._plain = "Content-Encoding" not in response.headers
        self._read = 0

    def read(self, size: int = -1) -> bytes:
        import urllib3

        try:
            data = self._response.raw.read(None if size is None or size < 0 else size, decode_content=True)
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise FetchError(UNREADABLE, f"{shown_url(self._url)}: {type(err).__name__} after "
                             f"{self._read} bytes", transient=True) from None
        self._read += len(data)
        if not data and self._plain and self._expected and self._expected.isdigit() \
                and self._read < int(self._expected):
            raise FetchError(UNREADABLE, f"{shown_url(self._url)}: body cut short, {self._read} of "
                             f"{self._expected} bytes", transient=True)
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._response.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _FileBody:
    """A file opened by fsspec; an I/O error while reading it is transient (gs:// hiccups)."""

    def __init__(self, handle, url: str):
        self._handle = handle
        self._url = url

    def read(self, size: int = -1) -> bytes:
        try:
            return self._handle.read(size)
        except OSError as err:
            raise FetchError(UNREADABLE, f"{shown_url(self._url)}: {type(err).__name__}: {err}",
                             transient=True) from None

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._handle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Fetcher:
    """Opens URLs under one policy with one HTTP session and the token (both made on the worker)."""

    def __init__(self, policy: FetchPolicy, token: Optional[str] = None):
        self.policy = policy
        self._token = token
        self._session = None  # made at the first http(s) URL

    @classmethod
    def start(cls, policy: FetchPolicy) -> "Fetcher":
        """A fetcher with the policy's token read now (call in ``DoFn.setup``, on the worker)."""
        return cls(policy, read_token(policy))

    def close(self) -> None:
        if self._session is not None:
            self._session.close()

    def open(self, url: str):
        """A binary file-like object reading ``url`` from its start; FetchError when it cannot."""
        return self._open_http(url) if is_http(url) else self._open_file(url)

    def _open_file(self, url: str):
        import fsspec

        try:
            return _FileBody(fsspec.open(url, "rb").open(), url)
        except FileNotFoundError as err:
            raise FetchError(NOT_FOUND, f"{type(err).__name__}: {err}") from None
        except (ValueError, ImportError) as err:
            raise FetchError("archive_bad_url", f"{type(err).__name__}: {err}") from None
        except OSError as err:
            raise FetchError(UNREADABLE, f"{type(err).__name__}: {err}", transient=True) from None

    def _headers(self, url: str, first_host: str) -> dict:
        host = _host(url)
        if self._token and host == first_host and host in self.policy.token_hosts:
            return {"Authorization": f"Bearer {self._token}"}
        return {}

    def _open_http(self, url: str):
        import requests

        policy = self.policy
        if self._session is None:
            self._session = requests.Session()
        first_host = _host(url)
        for _ in range(policy.max_redirects + 1):
            try:
                response = self._session.get(
                    url, headers=self._headers(url, first_host), stream=True, allow_redirects=False,
                    timeout=(policy.connect_timeout_s, policy.read_timeout_s))
            except (requests.ConnectionError, requests.Timeout) as err:
                raise FetchError(UNREADABLE, f"{shown_url(url)}: {type(err).__name__}", transient=True) from None
            except requests.RequestException as err:
                raise FetchError("archive_bad_url", f"{shown_url(url)}: {type(err).__name__}") from None
            if response.status_code in _REDIRECTS and "Location" in response.headers:
                response.close()
                url = urllib.parse.urljoin(url, response.headers["Location"])
                continue
            if not 200 <= response.status_code < 300:
                response.close()
                raise _status_error(response, url)
            return _HttpBody(response, url)
        raise FetchError("archive_too_many_redirects", f"over {policy.max_redirects} redirects, last "
                         f"to {shown_url(url)}")

    def retrying(self, attempt: Callable[[], T], on_retry: Callable[[FetchError], None] = lambda err: None) -> T:
        """``attempt()`` again from its start after each transient FetchError, at most
        ``policy.retries`` times; the last transient failure is raised with the attempts in its
        detail, a permanent one at once. ``on_retry`` is told of each retry (to count it)."""
        policy = self.policy
        for retry in range(policy.retries + 1):
            try:
                return attempt()
            except FetchError as err:
                if not err.transient:
                    raise
                if retry == policy.retries:
                    raise type(err)(err.reason, f"{retry + 1} attempts, last: {err.detail}",
                                    transient=True) from None
                on_retry(err)
                time.sleep(policy.delay(retry, err.retry_after))
        raise AssertionError("unreachable")

    def spool(self, url: str, max_memory_bytes: int = 32 << 20):
        """The whole content of ``url`` in a SpooledTemporaryFile at position 0, fetched with retries
        (each attempt from the start into a fresh spool), for readers that need a seekable file."""
        def attempt():
            spool = tempfile.SpooledTemporaryFile(max_size=max_memory_bytes)
            try:
                with self.open(url) as body:
                    while chunk := body.read(_CHUNK):
                        spool.write(chunk)
            except BaseException:
                spool.close()
                raise
            spool.seek(0)
            return spool

        return self.retrying(attempt)


class FetchingOnWorker:
    """A DoFn's fetcher, made in ``setup`` on the worker (the token is read there, never pickled
    with the DoFn) and closed in ``teardown``; mixed in before ``beam.DoFn``. ``self._fetch`` is
    the FetchPolicy, ``self._fetcher`` the Fetcher while the DoFn runs."""

    def __init__(self, fetch: FetchPolicy = FetchPolicy()):
        self._fetch = fetch
        self._fetcher = None

    def setup(self):
        self._fetcher = Fetcher.start(self._fetch)

    def teardown(self):
        if self._fetcher is not None:
            self._fetcher.close()
