"""Render declares what it changed (the site journal); publish follows it instead of walking the site."""

from __future__ import annotations

import json

import pytest

import generator.publish.s3_store as s3_store
from generator.errors import UserError
from generator.publish import PublishSettings, publish
from generator.publish import STATE_NAME
from generator.publish.digests import DigestCache, cache_path
from generator.publish.record import parse_record
from generator.render import RenderSettings, render
from generator.site_journal import journal_path, read_journal

from test_publish import fail_puts_from, new_client, remote_files, tree


def record_of(s3, bucket, prefix="g/"):
    body = s3.get_object(Bucket=bucket, Key=prefix + STATE_NAME)["Body"].read()
    return parse_record(body, "test", {}, PublishSettings())
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
    assert result["remote_view"] == "record and render's journal" and result["files"] == len(files_of(site))
    assert "ListObjectsV2" not in result["requests"] and result["requests"]["HeadObject"] == 8  # the spot check
    assert record_of(s3, bucket).generation == second["generation"]
    # Published again: the record's GET and the spot check; nothing read, nothing sent.
    again = publish(site, target, PublishSettings())
    assert again["requests"] == {"GetObject": 1, "HeadObject": 8} and again["hashed"] == 0 and again["remote_view"].endswith("journal")


def test_a_file_target_follows_the_journal_through_the_digest_cache(tmp_path, monkeypatch):
    records = catalog_samples(30)
    render_night(tmp_path, records)
    site, public = tmp_path / "site", tmp_path / "public"
    publish(site, f"file://{public}", PublishSettings())
    second = render_night(tmp_path, records[:25], "kept2.jsonl")
    reads = counting_reads(monkeypatch)
    result = publish(site, f"file://{public}", PublishSettings())
    assert result["hashed"] == len(reads) == second["written"] and tree(public) == files_of(site)
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


# --- following the journal on S3: the same guarantees as the full diff -----------------------------

def published_night(tmp_path, bucket, records) -> tuple:
    render_night(tmp_path, records)
    site, target = tmp_path / "site", f"s3://{bucket}/g"
    publish(site, target, PublishSettings())
    return site, target


def test_a_crash_while_following_leaves_every_upload_owned(tmp_path, bucket, s3):
    records = catalog_samples(30)
    site, target = published_night(tmp_path, bucket, records)
    old = remote_files(s3, bucket, "g/")
    render_night(tmp_path, records + catalog_samples(34)[30:], "kept2.jsonl")
    client = new_client()
    fail_puts_from(client, 4)  # the pending object, two uploads, then the link goes down
    with pytest.raises(UserError, match="injected network failure"):
        publish(site, target, PublishSettings(concurrency=1), client=client)
    partial = remote_files(s3, bucket, "g/")
    assert partial["index.html"] == old["index.html"] and len(partial) > len(old)
    render_night(tmp_path, records, "kept3.jsonl")  # the night is redone without the new items
    redone = publish(site, target, PublishSettings())
    assert "journal" not in redone["remote_view"]  # the pending mark sends it to the full diff
    assert redone["deleted"] >= 1 and remote_files(s3, bucket, "g/") == files_of(site) == old


def test_deletes_follow_the_journal_and_others_files_stay(tmp_path, bucket, s3):
    records = catalog_samples(30)
    site, target = published_night(tmp_path, bucket, records)
    s3.put_object(Bucket=bucket, Key="g/theirs.txt", Body=b"not ours")
    second = render_night(tmp_path, records[:24], "kept2.jsonl")
    result = publish(site, target, PublishSettings())
    assert result["remote_view"].endswith("journal") and result["deleted"] == second["removed"] > 0
    assert remote_files(s3, bucket, "g/") == {**files_of(site), "theirs.txt": b"not ours"}


def test_held_back_deletes_or_new_header_rules_mean_the_full_diff(tmp_path, bucket, s3):
    records = catalog_samples(30)
    site, target = published_night(tmp_path, bucket, records)
    render_night(tmp_path, records[:20], "kept2.jsonl")
    held = publish(site, target, PublishSettings(max_deletes=1))
    assert held["journal"] == "not followed: more deletes than max_deletes" and held["deletes_skipped"] > 1
    assert held["requests"]["GetObject"] == 1  # the full diff reuses the record the journal plan read
    assert record_of(s3, bucket).generation is None  # the target holds more than the site
    render_night(tmp_path, records[:19], "kept3.jsonl")
    assert publish(site, target, PublishSettings())["journal"] == "not followed: the record names no generation"

    render_night(tmp_path, records[:18], "kept4.jsonl")
    rules = publish(site, target, PublishSettings(html_cache_control="public, max-age=60"))
    assert rules["journal"] == "not followed: the header rules changed" and rules["reasons"]["headers changed"] > 0
    assert remote_files(s3, bucket, "g/") == files_of(site)


def test_an_object_gone_behind_the_publishers_back_is_put_back(tmp_path, bucket, s3, monkeypatch):
    monkeypatch.setattr(s3_store, "spot_sample", lambda keys, count: sorted(keys)[:count])  # the first keys
    records = catalog_samples(30)
    site, target = published_night(tmp_path, bucket, records)
    first_key = sorted(record_of(s3, bucket).files)[0]
    s3.delete_object(Bucket=bucket, Key="g/" + first_key)
    render_night(tmp_path, records[:29], "kept2.jsonl")
    result = publish(site, target, PublishSettings())
    assert result["journal"] == f"not followed: {first_key} is recorded but not in the store"
    assert remote_files(s3, bucket, "g/") == files_of(site)


def test_following_the_journal_keeps_the_websites_error_page(tmp_path, bucket, s3):
    records = catalog_samples(20)
    site, target = published_night(tmp_path, bucket, records)
    render_night(tmp_path, records[:18], "kept2.jsonl")  # 404.html unchanged: not in the journal
    result = publish(site, target, PublishSettings(website=True))
    assert result["remote_view"].endswith("journal") and "404.html" not in read_journal(
        site, json.loads((tmp_path / "site.manifest.json").read_text())).written
    assert s3.get_bucket_website(Bucket=bucket)["ErrorDocument"] == {"Key": "g/404.html"}
