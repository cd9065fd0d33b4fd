"""Render declares what it changed (the site journal); publish follows it instead of walking the site."""

from __future__ import annotations

import json

from generator.publish import PublishSettings, publish
from generator.publish.digests import DigestCache, cache_path
from generator.render import RenderSettings, render
from generator.site_journal import journal_path, read_journal

from test_publish import remote_files, tree
from test_publish_digests import counting_reads
from test_render import catalog_samples, write_samples

NIGHT = "2026-11-02"


def render_night(tmp_path, records, name="kept.jsonl") -> dict:
    return render(write_samples(tmp_path / name, records), tmp_path / "site", RenderSettings(), night=NIGHT)


def files_of(site) -> dict[str, bytes]:
    return {p.relative_to(site).as_posix(): p.read_bytes() for p in site.rglob("*") if p.is_file()}


def test_the_journal_names_exactly_what_render_changed(tmp_path):
    records = catalog_samples(30)
    first = render_night(tmp_path, records)
    assert first["generation"] and read_journal(tmp_path / "site", first).previous is None
    before = files_of(tmp_path / "site")

    edited = [dict(r) for r in records[:-1]]
    edited[3]["text"] = edited[3]["text"].replace(".", "!", 1)
    second = render_night(tmp_path, edited, "kept2.jsonl")
    after = files_of(tmp_path / "site")
    journal = read_journal(tmp_path / "site", second)
    assert journal.previous == first["generation"] and journal.generation == second["generation"]
    assert journal.written == {key for key in after if before.get(key) != after[key]}
    assert journal.removed == before.keys() - after.keys() and journal.removed
    assert second["written"] == len(journal.written) and second["removed"] == len(journal.removed)


def test_the_same_render_again_keeps_the_generation(tmp_path):
    records = catalog_samples(12)
    first = render_night(tmp_path, records)
    again = render_night(tmp_path, records)
    assert again["written"] == 0 and again["generation"] == first["generation"]
    # The same render over the same previous site gives the same generation on another machine.
    other = render(write_samples(tmp_path / "other.jsonl", records), tmp_path / "other" / "site", RenderSettings(),
                   night=NIGHT)
    assert other["generation"] == first["generation"]


def test_publish_reads_only_what_render_wrote_and_the_target_is_the_site(tmp_path, monkeypatch, bucket, s3):
    records = catalog_samples(40)
    render_night(tmp_path, records)
    site, target = tmp_path / "site", f"s3://{bucket}/g"
    first = publish(site, target, PublishSettings())
    assert first["hashed"] == first["files"]  # no cache yet: the site was walked
    assert DigestCache.load(cache_path(site), "plain").generation is not None

    edited = [dict(r) for r in records]
    edited[5]["text"] = edited[5]["text"].replace(".", "?", 1)
    second = render_night(tmp_path, edited, "kept2.jsonl")
    reads = counting_reads(monkeypatch)
    result = publish(site, target, PublishSettings())
    written = read_journal(site, second).written
    assert result["hashed"] == len(written) == second["written"] and len(reads) == len(written)
    assert 0 < result["uploaded"] <= len(written) and remote_files(s3, bucket, "g/") == files_of(site)
    assert DigestCache.load(cache_path(site), "plain").generation == second["generation"]


def test_two_renders_without_a_publish_between_walk_the_site(tmp_path):
    records = catalog_samples(20)
    render_night(tmp_path, records)
    site, public = tmp_path / "site", tmp_path / "public"
    publish(site, f"file://{public}", PublishSettings())
    render_night(tmp_path, records[:15], "a.jsonl")
    render_night(tmp_path, records[:10], "b.jsonl")  # the cache describes neither this journal's start nor end
    result = publish(site, f"file://{public}", PublishSettings())
    assert result["deleted"] > 0 and tree(public) == files_of(site)


def test_a_journal_of_another_render_is_ignored(tmp_path):
    records = catalog_samples(20)
    first = render_night(tmp_path, records)
    site, public = tmp_path / "site", tmp_path / "public"
    publish(site, f"file://{public}", PublishSettings())
    second = render_night(tmp_path, records[:12], "a.jsonl")
    state = json.loads(journal_path(site).read_bytes())
    journal_path(site).write_text(json.dumps({**state, "written": [], "removed": []}))
    assert read_journal(site, second) is not None  # a lying journal of this generation is believed...
    journal_path(site).write_text(json.dumps({**state, "generation": first["generation"]}))
    assert read_journal(site, second) is None  # ...one naming another generation is not
    publish(site, f"file://{public}", PublishSettings())
    assert tree(public) == files_of(site)


def test_a_hand_edit_after_render_waits_for_verify(tmp_path, bucket, s3):
    """The accepted risk the README names: the journal vouches for files render did not write."""
    records = catalog_samples(12)
    render_night(tmp_path, records)
    site, target = tmp_path / "site", f"s3://{bucket}/g"
    publish(site, target, PublishSettings())
    page = site / "robots.txt"
    page.write_bytes(page.read_bytes() + b"# edited by hand\n")
    assert publish(site, target, PublishSettings())["uploaded"] == 0
    verified = publish(site, target, PublishSettings(verify=True))
    assert verified["uploaded"] == 1 and remote_files(s3, bucket, "g/") == files_of(site)
