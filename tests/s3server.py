"""A real S3-compatible HTTP server on loopback (moto in server mode) for tests.

Use it from a test module with ``from s3server import s3_server, make_bucket``
(importing the fixture makes pytest see it). ``s3_server`` is session-scoped: one
``python -m moto.server`` process on 127.0.0.1 and a free port; while it is up,
AWS_ENDPOINT_URL and test credentials are set in the environment (restored
afterwards), so boto3 clients built by the code under test talk to it. A separate
process, so test-side ``mock_aws`` resets cannot wipe its buckets and its
request handling does not compete with the tests for the GIL.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import pytest

TEST_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_DEFAULT_REGION": "us-east-1"}
# Anything that could make boto3 pick other credentials or endpoints than the test's.
AWS_ENV_TO_CLEAR = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL_S3",
                    "AWS_ENDPOINT_URL_CLOUDFRONT", "AWS_CA_BUNDLE")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_moto_server(port: int | None = None, timeout: float = 30.0) -> tuple[subprocess.Popen, str]:
    """Start ``python -m moto.server`` on loopback; returns (process, endpoint URL) once it answers."""
    port = port or free_port()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                return process, url
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"moto server did not start on {url}")
            time.sleep(0.1)


def stop_moto_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def s3_server():
    """The endpoint URL of a moto S3 server; AWS_* env points at it for the session."""
    process, url = start_moto_server()
    try:
        with pytest.MonkeyPatch.context() as patch:
            for name in AWS_ENV_TO_CLEAR:
                patch.delenv(name, raising=False)
            for name, value in {**TEST_CREDENTIALS, "AWS_ENDPOINT_URL": url}.items():
                patch.setenv(name, value)
            yield url
    finally:
        stop_moto_server(process)


def s3_test_client(endpoint_url: str):
    """A plain boto3 client for test set-up and read-back (not the code under test's)."""
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint_url, aws_access_key_id="testing",
                        aws_secret_access_key="testing", region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}))


def make_bucket(endpoint_url: str, prefix: str = "test") -> str:
    """Create a fresh, uniquely named bucket and return its name."""
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    s3_test_client(endpoint_url).create_bucket(Bucket=name)
    return name
