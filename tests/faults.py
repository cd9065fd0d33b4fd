"""Fault makers for the fault matrix: small full disks, read-only mounts, HTTP servers, a resetting TCP proxy.

Mounts need root (the CI container runs as root); where ``mount`` fails the test skips with the reason.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import os
import socket
import subprocess
import threading
from pathlib import Path

import pytest


def tree_hash(*roots: Path) -> dict:
    """``{path: sha256}`` of every file (dotfiles too) and every folder under ``roots``."""
    digests = {}
    for root in roots:
        root = Path(root)
        if not root.exists():
            digests[str(root)] = None
            continue
        for path in sorted([root, *root.rglob("*")]):
            key = str(path)
            if path.is_symlink():
                digests[key] = "link:" + os.readlink(path)
            elif path.is_file():
                digests[key] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                digests[key] = "dir"
    return digests


def _mount(args: list[str]) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount here ({result.stderr.strip() or 'not root'}): `mount {' '.join(args)}` failed")


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@contextlib.contextmanager
def small_disk(path: Path, size: str = "64k"):
    """A tmpfs of ``size`` at ``path``: writes beyond it fail with ENOSPC."""
    path.mkdir(parents=True, exist_ok=True)
    _mount(["-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)])
    try:
        yield path
    finally:
        _umount(path)


@contextlib.contextmanager
def read_only(path: Path):
    """``path`` (a folder) bind-mounted read-only onto itself: writes fail with EROFS, even for root."""
    path.mkdir(parents=True, exist_ok=True)
    _mount(["--bind", str(path), str(path)])
    try:
        result = subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot remount read-only: {result.stderr.strip()}")
        yield path
    finally:
        _umount(path)


class _Handler(http.server.BaseHTTPRequestHandler):
    root: Path
    auth: str | None = None
    seen: list

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.seen.append((self.path, self.headers.get("Authorization")))
        if self.auth and self.headers.get("Authorization") != self.auth:
            self.send_response(401)
            self.end_headers()
            return
        path = self.root / self.path.split("?", 1)[0].lstrip("/")
        if not path.is_file():
            self.send_response(404)
            self.end_headers()
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def http_server(root: Path, user: str | None = None, password: str | None = None):
    """Serve ``root`` on loopback (query strings ignored, Basic auth when ``user`` is set); yields (url, requests)."""
    seen: list = []
    auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode() if user else None
    handler = type("Handler", (_Handler,), {"root": Path(root), "auth": auth, "seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def resetting_proxy(upstream: str, after_bytes: int = 0):
    """A TCP proxy in front of ``upstream`` (http://host:port) that resets every connection.

    It forwards the client's first ``after_bytes`` bytes of response (0: none), then closes
    with RST (SO_LINGER 0), the way a dropped connection looks to boto3 and urllib.
    """
    host, port = upstream.split("://", 1)[1].split(":")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve(client: socket.socket) -> None:
        with client, socket.create_connection((host, int(port))) as server:
            client.settimeout(5)
            server.settimeout(5)
            with contextlib.suppress(OSError):
                request = client.recv(65536)
                server.sendall(request)
                sent = 0
                while sent < after_bytes:
                    chunk = server.recv(min(65536, after_bytes - sent))
                    if not chunk:
                        break
                    client.sendall(chunk)
                    sent += len(chunk)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    def accept() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                continue
            threading.Thread(target=serve, args=(client,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=2)
        listener.close()
