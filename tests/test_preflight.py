"""The night's first check: user errors name their fix; what may pass by itself is transient (retried)."""

from __future__ import annotations

import http.server
import threading

import pytest

from generator.errors import UserError
from generator.preflight import TransientError, check_night_config


@pytest.fixture
def http_catalog():
    """A loopback HTTP server: /catalog.csv exists, /gone is 404, /busy is 503."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response({"/catalog.csv": 200, "/busy": 503}.get(self.path, 404))
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_usable_configuration_passes(make_config, sample_catalog, tmp_path, http_catalog):
    config = make_config(publish={"target": (tmp_path / "public").as_uri()})
    checked = check_night_config(config, str(sample_catalog))
    assert checked["profile"] == "test" and checked["target"].startswith("file://")
    check_night_config(config, f"{http_catalog}/catalog.csv")


def test_user_errors_name_what_to_set(make_config, sample_catalog, tmp_path, http_catalog):
    with pytest.raises(UserError, match=r"no publish target set.*target param"):
        check_night_config(make_config(), str(sample_catalog))
    with pytest.raises(UserError, match="unsupported publish target"):
        check_night_config(make_config(publish={"target": "ftp://host/site"}), str(sample_catalog))
    target = make_config(publish={"target": (tmp_path / "public").as_uri()})
    with pytest.raises(UserError, match=r"catalog not found.*catalog param"):
        check_night_config(target, str(tmp_path / "missing.csv"))
    with pytest.raises(UserError, match="HTTP 404"):
        check_night_config(target, f"{http_catalog}/gone")


def test_server_trouble_is_transient(make_config, tmp_path, http_catalog):
    config = make_config(publish={"target": (tmp_path / "public").as_uri()})
    with pytest.raises(TransientError, match="503"):
        check_night_config(config, f"{http_catalog}/busy")
    with pytest.raises(TransientError, match="cannot reach"):
        check_night_config(config, "http://127.0.0.1:9/catalog.csv")  # the discard port: refused


def test_s3_needs_credentials_and_an_existing_bucket(make_config, sample_catalog, s3_server, monkeypatch):
    import boto3

    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket="preflight-ok")
    check_night_config(make_config(publish={"target": "s3://preflight-ok/site"}), str(sample_catalog))
    with pytest.raises(UserError, match=r"s3://preflight-missing does not exist.*GALLERY_TARGET"):
        check_night_config(make_config(publish={"target": "s3://preflight-missing/site"}), str(sample_catalog))
    with pytest.raises(UserError, match=r"s3://preflight-ok/nope.csv does not exist"):
        check_night_config(make_config(publish={"target": "s3://preflight-ok/site"}), "s3://preflight-ok/nope.csv")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(UserError, match=r"no AWS credentials.*AWS_ACCESS_KEY_ID"):
        check_night_config(make_config(publish={"target": "s3://preflight-ok/site"}), str(sample_catalog))
