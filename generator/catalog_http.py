"""The catalog over HTTP: one GET with an overall deadline, credentials kept to their origin.

``user:pass@`` in the URL becomes a Basic ``Authorization`` header (urllib ignores userinfo);
it goes to that URL's origin (scheme, host, port) only: a redirect to another origin is
followed without it, as browsers and well-kept clients do. A redirect to anything but
http(s) is refused. The whole fetch (connect, status line, headers, body) must end within
``ingest.fetch_timeout_seconds``: a server that sends a byte a minute cannot hold a night.
Every protocol failure (``http.client.HTTPException``: a status line that is not HTTP, 100+
headers, a 64 kB header line, a body shorter than its Content-Length, a bad chunked body)
is one UserError line.
"""

from __future__ import annotations

import base64
import http.client
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request

from .errors import UserError
from .redact import public_label

CHUNK = 1 << 16
STALL_SECONDS = 60.0  # the longest a single connect or read may wait, within the overall deadline


def _origin(url: str) -> tuple:
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(scheme)


class OriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect, dropping ``Authorization`` when it leaves the origin the credentials were given for."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urllib.parse.urlsplit(newurl).scheme.lower() not in ("http", "https"):
            raise UserError("the catalog server redirected to a URL that is not http(s)",
                            "pass the catalog's final http(s) URL")
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and _origin(newurl) != _origin(req.full_url):
            new.remove_header("Authorization")
        return new


def catalog_request(parsed: urllib.parse.SplitResult, method: str = "GET") -> urllib.request.Request:
    """A GET for an http(s) catalog; ``user:pass@`` becomes a Basic Authorization header."""
    if parsed.username is None:
        return urllib.request.Request(parsed.geturl(), method=method)
    host = parsed.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parsed.port:
        netloc += f":{parsed.port}"
    url = urllib.parse.urlunsplit((parsed.scheme, netloc, parsed.path, parsed.query, parsed.fragment))
    user = urllib.parse.unquote(parsed.username)
    password = urllib.parse.unquote(parsed.password or "")
    token = base64.b64encode(f"{user}:{password}".encode("utf-8")).decode("ascii")
    return urllib.request.Request(url, headers={"Authorization": f"Basic {token}"}, method=method)


class _Deadline:
    """Shuts every socket of one fetch down when its time is up, waking a read blocked on it."""

    def __init__(self, seconds: float):
        self.seconds, self.expired = seconds, False
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.timer = threading.Timer(seconds, self.expire)
        self.timer.daemon = True

    def expire(self) -> None:
        with self.lock:
            self.expired = True
            for sock in self.sockets:
                _shut(sock)

    def watch(self, sock: socket.socket) -> None:
        with self.lock:
            self.sockets.append(sock)
            if self.expired:
                _shut(sock)

    def handlers(self) -> list:
        deadline = self

        class Connection(http.client.HTTPConnection):
            def connect(self):
                super().connect()
                deadline.watch(self.sock)

        class SecureConnection(http.client.HTTPSConnection):
            def connect(self):
                super().connect()
                deadline.watch(self.sock)

        class Handler(urllib.request.HTTPHandler):
            def http_open(self, req):
                return self.do_open(Connection, req)

        class SecureHandler(urllib.request.HTTPSHandler):
            def https_open(self, req):
                return self.do_open(SecureConnection, req, context=self._context)

        return [Handler(), SecureHandler(), OriginRedirects()]


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed
        pass


def fetch_http(source: str, parsed: urllib.parse.SplitResult, deadline_seconds: float) -> bytes:
    """The body of an http(s) catalog, read within ``deadline_seconds`` in all."""
    label = public_label(source)
    deadline = _Deadline(deadline_seconds)
    opener = urllib.request.build_opener(*deadline.handlers())
    deadline.timer.start()
    try:
        with opener.open(catalog_request(parsed), timeout=min(STALL_SECONDS, deadline_seconds)) as response:
            chunks = []
            while chunk := response.read1(CHUNK):  # what has arrived, one system call at a time
                chunks.append(chunk)
            if response.length:  # http.client's read1 ends quietly at a premature end of the body
                raise http.client.IncompleteRead(b"".join(chunks), response.length)
            if deadline.expired:
                raise TimeoutError
            return b"".join(chunks)
    except UserError:
        raise
    except ValueError:  # http.client.InvalidURL and friends: the URL itself, shown without its secrets
        if deadline.expired:
            raise _too_slow(label, deadline_seconds) from None
        raise UserError(f"bad catalog URL {label!r}", "pass an http(s)://host/path URL") from None
    except http.client.HTTPException as exc:
        if deadline.expired:
            raise _too_slow(label, deadline_seconds) from None
        raise UserError(f"could not download catalog {label}: the server broke HTTP ({_protocol_error(exc)})",
                        "check that the URL is the catalog's HTTP server, or retry if it was cut off") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        if deadline.expired or isinstance(exc, TimeoutError) or isinstance(getattr(exc, "reason", None), TimeoutError):
            raise _too_slow(label, deadline_seconds) from None
        raise UserError(f"could not download catalog {label}: {_url_error(exc)}",
                        "check the URL and the network") from None
    finally:
        deadline.timer.cancel()


def _too_slow(label: str, seconds: float) -> UserError:
    return UserError(f"could not download catalog {label}: it took longer than {seconds:g} s "
                     "(ingest.fetch_timeout_seconds)",
                     "check the catalog server, or raise ingest.fetch_timeout_seconds for a large or slow one")


def _protocol_error(exc: http.client.HTTPException) -> str:
    if isinstance(exc, http.client.IncompleteRead) and exc.expected is None:
        return "its chunked body is malformed or cut off"
    if isinstance(exc, http.client.IncompleteRead):
        return f"the body ended after {len(exc.partial)} bytes, {exc.expected} short of its Content-Length"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "it closed the connection without a response"
    if isinstance(exc, http.client.BadStatusLine):
        return "its status line is not HTTP"
    if isinstance(exc, http.client.LineTooLong):
        return "a header or chunk line is longer than 64 kB"
    return str(exc)[:200] or type(exc).__name__


def _url_error(exc: Exception) -> str:
    """Why a download failed, without echoing the URL (a redirect's may carry a signature)."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    reason = getattr(exc, "reason", None) or exc
    return (getattr(reason, "strerror", None) or type(reason).__name__ if "://" in str(reason) else str(reason))
