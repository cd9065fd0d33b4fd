"""S3 publishes whose cost follows the change, not the site: the diff is against the ownership record;
the bucket is listed only for --verify, without a trusted record, or when a spot check disagrees."""

from __future__ import annotations

import gzip
import json

import pytest

import generator.publish.s3_store as s3_store
from generator.publish import PublishSettings, publish

from test_publish import build_site, catalog, item_ids, remote_files


@pytest.fixture
def big_site(tmp_path, monkeypatch, bucket):
    """A site 'bigger than one listing page' (the page made 4 keys long), published once."""
    monkeypatch.setattr(s3_store, "LIST_PAGE", 4)
    monkeypatch.setattr(s3_store, "SAMPLE_KEYS", 4)
    monkeypatch.setattr(s3_store, "spot_sample", lambda keys, count: sorted(keys)[:count])  # the first keys
    site = tmp_path / "site"
    items = catalog(30)
    files = build_site(site, items)
    first = publish(site, f"s3://{bucket}/g", PublishSettings())
    assert first["remote_view"] == "listing: no record"
    return site, items, files


def test_unchanged_and_small_changes_cost_requests_not_listings(big_site, bucket, s3):
    site, items, files = big_site
    build_site(site, items)
    unchanged = publish(site, f"s3://{bucket}/g", PublishSettings())
    assert unchanged["remote_view"] == "record" and unchanged["uploaded"] == 0
    # The record, the spot check's HEADs: nothing that grows with the site (a listing here is 12+ pages).
    assert unchanged["requests"] == {"GetObject": 1, "HeadObject": 4}

    items[20] = (items[20][0], "A rewritten description.")
    changed = build_site(site, items[:-1])
    summary = publish(site, f"s3://{bucket}/g", PublishSettings())
    assert summary["remote_view"] == "record"
    assert "ListObjectsV2" not in summary["requests"] and summary["requests"]["HeadObject"] == 4
    assert summary["deleted"] == 1 and summary["uploaded"] == len({k for k in changed if changed[k] != files.get(k)})
    assert remote_files(s3, bucket, "g/") == changed


def test_a_spot_check_that_disagrees_falls_back_to_listing(big_site, bucket, s3):
    site, items, files = big_site
    first_key = sorted(files)[0]
    s3.put_object(Bucket=bucket, Key=f"g/{first_key}", Body=b"changed behind the publisher's back")
    summary = publish(site, f"s3://{bucket}/g", PublishSettings())
    assert summary["remote_view"] == f"listing: {first_key} was changed outside the publisher"
    assert summary["uploaded"] == 1 and remote_files(s3, bucket, "g/") == files

    s3.delete_object(Bucket=bucket, Key=f"g/{first_key}")
    summary = publish(site, f"s3://{bucket}/g", PublishSettings())
    assert summary["remote_view"] == f"listing: {first_key} is recorded but not in the store"
    assert summary["reasons"] == {"new": 1} and remote_files(s3, bucket, "g/") == files


def test_verify_lists_and_finds_what_the_spot_check_did_not_cover(big_site, bucket, s3):
    site, items, files = big_site
    page = f"d/{item_ids(30)[-1]}/index.html"  # far from the spot-checked first keys
    s3.put_object(Bucket=bucket, Key=f"g/{page}", Body=b"edited by hand")
    trusting = publish(site, f"s3://{bucket}/g", PublishSettings())
    assert trusting["remote_view"] == "record" and trusting["uploaded"] == 0  # the documented trade-off
    verified = publish(site, f"s3://{bucket}/g", PublishSettings(verify=True))
    assert verified["remote_view"] == "listing: --verify"
    assert verified["reasons"] == {"content changed": 1} and remote_files(s3, bucket, "g/") == files


def test_foreign_files_survive_publishes_that_do_not_list(big_site, bucket, s3):
    site, items, files = big_site
    s3.put_object(Bucket=bucket, Key="g/zz-theirs.txt", Body=b"not ours")
    new = build_site(site, items[:20])
    summary = publish(site, f"s3://{bucket}/g", PublishSettings(max_deletes=1000))
    assert summary["remote_view"] == "record" and summary["deleted"] == 11  # 10 pages and page 3
    assert remote_files(s3, bucket, "g/") == {**new, "zz-theirs.txt": b"not ours"}


def test_record_version_3_round_trips_and_version_2_is_still_read():
    from generator.publish.record import STATE_VERSION, Entry, Record, parse_record

    record = Record({"b/index.html": Entry("a" * 32, "h1" * 8, "a" * 32), "a.css": Entry("c" * 32, "h2" * 8, "x-1"),
                     "new.html": Entry("d" * 32, "h1" * 8, "")})  # unconfirmed: stays so
    for compress in (False, True):
        body = record.to_bytes(compress=compress)
        assert (body[:2] == b"\x1f\x8b") is compress
        again = parse_record(body, "here", {}, PublishSettings())
        assert again.files == record.files and not again.confirmed
    assert json.loads(record.to_bytes())["version"] == STATE_VERSION == 3
    version_2 = json.dumps({"version": 2, "files": {key: list(entry) for key, entry in record.files.items()}})
    assert parse_record(version_2.encode(), "here", {}, PublishSettings()).files == record.files
    state = json.loads(record.to_bytes())
    for broken in ({**state, "h": [0, 7, 0]}, {**state, "md5": state["md5"][:2]}, {**state, "keys": [[], "b", "c"]},
                   {**state, "keys": ["a", "a", "b"]}):
        assert parse_record(json.dumps(broken).encode(), "here", {}, PublishSettings()) is None
    assert parse_record(b"\x1f\x8b not gzip", "here", {}, PublishSettings()) is None


def test_an_interrupted_publish_leaves_the_record_marked_pending(big_site, bucket, s3):
    """Before its uploads a publish writes only its changes (the pending object) and marks the record:
    a page it rewrote and then lost the link stays known as changed, even when the night is redone
    with that page as the record has it."""
    from generator.errors import UserError
    from generator.publish.common import PENDING_NAME, STATE_NAME
    from test_publish import fail_puts_from, new_client

    site, items, files = big_site
    rewritten = list(items)
    rewritten[3] = (items[3][0], "Rewritten, then the link went down.")
    changed = build_site(site, rewritten)
    page = next(key for key in changed if changed[key] != files[key] and key.startswith("d/"))
    client = new_client()
    fail_puts_from(client, 3)  # the pending object, the rewritten page, then the link goes down
    with pytest.raises(UserError, match="injected network failure"):
        publish(site, f"s3://{bucket}/g", PublishSettings(concurrency=1), client=client)
    assert s3.head_object(Bucket=bucket, Key=f"g/{STATE_NAME}")["Metadata"] == {"pending": "1"}
    assert remote_files(s3, bucket, "g/")[page] == changed[page]

    build_site(site, items)  # the night redone: the page back to the bytes the record names
    again = publish(site, f"s3://{bucket}/g", PublishSettings())
    assert again["remote_view"] == "listing: the record has unconfirmed entries"
    assert remote_files(s3, bucket, "g/") == files
    assert s3.head_object(Bucket=bucket, Key=f"g/{STATE_NAME}")["Metadata"] == {}
    assert PENDING_NAME not in {o["Key"][2:] for o in s3.list_objects_v2(Bucket=bucket, Prefix="g/")["Contents"]}
    unchanged = publish(site, f"s3://{bucket}/g", PublishSettings())
    assert unchanged["remote_view"] == "record" and unchanged["requests"] == {"GetObject": 1, "HeadObject": 4}


def test_a_pending_mark_without_its_pending_object_is_not_trusted(big_site, bucket, s3):
    from generator.publish.common import STATE_NAME

    site, items, files = big_site
    key = f"g/{STATE_NAME}"
    s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key}, MetadataDirective="REPLACE",
                   Metadata={"pending": "1"}, ContentType="application/json", ContentEncoding="gzip")
    summary = publish(site, f"s3://{bucket}/g", PublishSettings())
    assert summary["remote_view"] == "listing: the record has unconfirmed entries" and summary["uploaded"] == 0
    assert s3.head_object(Bucket=bucket, Key=key)["Metadata"] == {}


def test_the_record_table_changes_columns_as_the_record_would():
    from generator.publish.record import Entry, Record, RecordTable, parse_record

    files = {"b/index.html": Entry("a" * 32, "h1" * 8, "a" * 32), "d.css": Entry("c" * 32, "h2" * 8, "x-1")}
    assert RecordTable.parse(Record(files).to_bytes(compress=True)) is None  # no generation: not followed
    table = RecordTable.parse(Record(files, generation="g1", rules="r").to_bytes(compress=True))
    assert table.generation == "g1" and table.confirmed and table.get("d.css") == files["d.css"]
    changes = {"a.html": Entry("e" * 32, "h3" * 8, "e" * 32), "d.css": Entry("f" * 32, "h2" * 8, "f" * 32)}
    table.update(changes, ["b/index.html", "gone.txt"], "g2", "r")
    expected = Record({"a.html": changes["a.html"], "d.css": changes["d.css"]}, generation="g2", rules="r")
    assert parse_record(table.to_bytes(), "here", {}, PublishSettings()) == expected
    assert table.keys == ["a.html", "d.css"] and table.get("b/index.html") is None
    state = json.loads(gzip.decompress(table.to_bytes()))
    for broken in ({**state, "keys": ["d.css", "a.html"]}, {**state, "h": [0, 9]}, {**state, "generation": 3},
                   {**state, "md5": ["x"]}):
        assert RecordTable.parse(gzip.compress(json.dumps(broken).encode())) is None
    assert not RecordTable.parse(Record({**files, "n.html": Entry("d" * 32, "h1" * 8, "")}, generation="g",
                                        rules="r").to_bytes(compress=True)).confirmed
