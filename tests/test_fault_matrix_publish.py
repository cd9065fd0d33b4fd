"""The fault matrix, part two for render's archive and publish: a failed render, racing publishes, a site
that lost a file, an empty night.

Shares the published ``world`` of tests/test_fault_matrix.py. Each case is a class of fault from issue 20
(items 3-6); a mutation of each fix makes its case fail.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading

import pytest

from generator.publish import PublishSettings, STATE_NAME, publish
from generator.publish.record import parse_record
from generator.render import RenderSettings, render

from conftest import ROOT, SAMPLE_CATALOG, run_cli
from faults import small_disk, tree_hash
from test_fault_matrix import GOOD, NIGHT, check, world  # noqa: F401  (the shared published night)
from test_publish import new_client, remote_files, tree
from test_render import catalog_samples, write_samples


def kept_file(path, texts) -> str:
    path.write_text("".join(json.dumps({"text": t, "terminated": True}) + "\n" for t in texts))
    return str(path)


# --- a failed render leaves the archive (and the site) as they were -----------------------------------

OTHER = [text.replace("A ", "One ", 1) for text in GOOD]  # another night's samples for the archived date


def fill(disk) -> None:
    """Write to ``disk`` until it is full."""
    with open(disk / "filler", "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 1024)
        except OSError:
            pass


@pytest.mark.parametrize("full", ["site", "archive"])
def test_a_render_that_fails_on_a_full_disk_leaves_the_archive_as_it_was(world, tmp_path, full):
    """The archive night is written only once the whole site is built (before the swap), both files at once."""
    samples = kept_file(tmp_path / "other.jsonl", OTHER)
    with small_disk(tmp_path / "full", "16k" if full == "site" else "64k") as disk:
        if full == "site":  # the site cannot be built: the archive must not get samples never rendered
            out, archive = disk / "site", world["work"] / "archive"
        else:  # the archive cannot be written: the site must not be swapped in without it
            out, archive = world["work"] / "site", disk / "archive"
            shutil.copytree(world["work"] / "archive", archive)
            fill(disk)
            before = tree_hash(archive)
        result = run_cli("render", "--samples", samples, "--out", str(out), "--night", NIGHT, "--archive", str(archive))
        check(world, result, 2)
        if full == "archive":
            assert tree_hash(archive) == before, "the archive night is the old pair or the new one"


# --- two publishes into one S3 prefix at once --------------------------------------------------------

def rendered_nights(tmp_path) -> dict:
    """One site (night 1), and two renders from it (nights 2 and 3), each beside its own journal."""
    records = catalog_samples(40)
    render(write_samples(tmp_path / "k1.jsonl", records), tmp_path / "one" / "site", RenderSettings(), night=NIGHT)
    sites = {"one": tmp_path / "one" / "site"}
    for name, night, edit in (("two", "2026-11-21", 3), ("three", "2026-11-22", 7)):
        shutil.copytree(tmp_path / "one", tmp_path / name, symlinks=True)
        edited = [dict(r) for r in records[:30]]
        edited[edit]["text"] = edited[edit]["text"].replace(".", "!", 1)
        render(write_samples(tmp_path / f"k-{name}.jsonl", edited), tmp_path / name / "site", RenderSettings(),
               night=night)
        sites[name] = tmp_path / name / "site"
    return sites


def files_of(site) -> dict[str, bytes]:
    return {p.relative_to(site).as_posix(): p.read_bytes() for p in site.rglob("*") if p.is_file()}


def record_of(s3, bucket, prefix):
    body = s3.get_object(Bucket=bucket, Key=prefix + STATE_NAME)["Body"].read()
    return parse_record(body, "test", {}, PublishSettings())


def test_a_publish_racing_another_leaves_the_record_unsettled_and_the_next_converges(tmp_path, bucket, s3):
    """Deterministic: the night-2 publish is held before its last record write while night 3 publishes whole."""
    sites = rendered_nights(tmp_path)
    target = f"s3://{bucket}/g"
    publish(sites["one"], target, PublishSettings())
    client, held, release = new_client(), threading.Event(), threading.Event()

    def hold_the_record_write(params, **_):
        if params.get("url_path", "").endswith(STATE_NAME) and not held.is_set():
            held.set()
            release.wait(60)

    client.meta.events.register("before-call.s3.PutObject", hold_the_record_write)
    racing = {}
    first = threading.Thread(target=lambda: racing.setdefault("two", publish(sites["two"], target, PublishSettings(),
                                                                             client=client)))
    first.start()
    assert held.wait(60), "the night-2 publish reached its record write"
    racing["three"] = publish(sites["three"], target, PublishSettings())
    release.set()
    first.join(60)
    assert racing["two"].get("raced") and any("another publish" in w for w in racing["two"]["warnings"])
    assert record_of(s3, bucket, "g/").unsettled and record_of(s3, bucket, "g/").generation is None
    republished = publish(sites["two"], target, PublishSettings())
    assert republished["remote_view"] == "listing: the record is unsettled (two publishes overlapped)"
    assert remote_files(s3, bucket, "g/") == files_of(sites["two"])
    settled = record_of(s3, bucket, "g/")
    assert not settled.unsettled and settled.generation is not None
    assert publish(sites["two"], target, PublishSettings())["remote_view"] == "record and render's journal"


def test_two_real_concurrent_publishes_then_a_republish_converges(tmp_path, s3_server, s3):
    """Two CLI publishes started together onto one prefix, five times; the next publish of either site
    makes the target that site exactly."""
    from s3server import make_bucket

    sites = rendered_nights(tmp_path)
    for attempt in range(5):
        bucket = make_bucket(s3_server)
        target = f"s3://{bucket}/g"
        publish(sites["one"], target, PublishSettings())
        runs = [subprocess.Popen([sys.executable, "-m", "generator", "publish", "--site", str(sites[name]),
                                  "--target", target], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True) for name in ("two", "three")]
        for run in runs:
            _, stderr = run.communicate(timeout=300)
            assert "Traceback" not in stderr, stderr
            # The loser of the first record write stops before uploading (one line, exit 2); else both finish.
            assert run.returncode == 0 or (run.returncode == 2 and "another publish" in stderr), stderr
        winner = "two" if attempt % 2 == 0 else "three"
        publish(sites[winner], target, PublishSettings())
        assert remote_files(s3, bucket, "g/") == files_of(sites[winner]), f"attempt {attempt}"


# --- the site folder is the truth ------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["file", "s3"])
def test_a_page_deleted_from_the_site_is_walked_past_not_an_error(world, tmp_path, kind, request):
    """The digest cache (and render's journal) name a page deleted by hand: publish walks the folder."""
    site = tmp_path / "site"
    result = run_cli("render", "--samples", str(world["kept"]), "--out", str(site), "--night", NIGHT)
    assert result.returncode == 0, result.stderr[-2000:]
    check(world, run_cli("publish", "--site", str(site), "--target", f"file://{tmp_path / 'first'}"), 0)
    page = next(p for p in sorted(site.glob("d/*.html")))
    page.unlink()
    if kind == "file":
        target, fetch = f"file://{tmp_path / 'second'}", lambda: tree(tmp_path / "second")
    else:
        s3_server = request.getfixturevalue("s3_server")
        from s3server import make_bucket, s3_test_client

        bucket = make_bucket(s3_server)
        target, fetch = f"s3://{bucket}/g", lambda: remote_files(s3_test_client(s3_server), bucket, "g/")
    result = run_cli("publish", "--site", str(site), "--target", target)
    check(world, result, 0)
    assert fetch() == files_of(site), "the new target holds what the folder holds"
    summary = json.loads((tmp_path / "site-publish.manifest.json").read_text())
    assert any("walked" in warning for warning in summary["warnings"]), summary["warnings"]


# --- an empty night leaves the published site as it was --------------------------------------------

def test_an_empty_night_under_the_test_profile_leaves_the_published_site(world):
    """min_kept 0 lets a night keep nothing; it still never replaces the gallery, and says so."""
    night = "2026-11-29"
    result = run_cli("run", "--profile", "test", "--catalog", str(SAMPLE_CATALOG), "--workdir", str(world["work"]),
                     "--target", f"file://{world['public']}", "--samples", "4", "--night", night,
                     env={"GENERATOR_CURATE__MIN_CHARS": "599"})  # whatever the model writes, nothing is kept
    check(world, result, 0)
    report = json.loads((world["work"] / "nights" / night / "report.json").read_text())
    assert report["curate"]["kept"] == 0
    assert "kept no descriptions" in report["publish"]["not_published"]
    assert "not published: night 2026-11-29 kept no descriptions" in result.stdout
    assert not (world["work"] / "archive" / night).exists()
