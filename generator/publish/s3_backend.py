"""Publishing to s3://bucket/prefix: diff against the ownership record, upload by phase, delete last.

What the target holds comes from the record (record.py), not from listing the
bucket, so an unchanged or slightly changed publish costs a few requests whatever
the size of the site: one GET of the record and a spot check (8 HEADs of
recorded keys chosen at random, see ``s3_store.spot_check``). The whole
target is listed instead with ``--verify``, when there is no record, when the
record has unconfirmed entries (an interrupted publish, or a version-1 state),
when the spot check disagrees, or when the record is small enough for one
listing page to cover it anyway. The trade-off: an object changed behind the
publisher's back outside the spot-checked keys is found by the next spot check
that covers it, or by ``--verify``; objects this gallery did not publish are
never deleted either way.

When render's journal can be followed (s3_journal.py), not even the record's
entries are compared: only the files render wrote are read and diffed.

Headers (Content-Type, Cache-Control, Content-Encoding) are a function of the key
and of the settings; the record keeps the digest of the headers each file was
published with, so a settings change re-uploads exactly the files whose headers
change, without a HEAD. Objects the record cannot vouch for (adopted ones, or an
upload that a crash left unconfirmed) are HEADed once and compared through the
``x-amz-meta-md5`` / ``x-amz-meta-headers`` metadata every upload carries.

Two publishes into one prefix at once (two overlapping nights, an operator's manual publish) are
detected, not excluded: every write of the record is conditional on the ETag of the record this
publish read or last wrote (``If-Match``, or ``If-None-Match: *`` where there was none), which AWS
S3, MinIO and moto honour. Why not a lease object: a publisher killed while holding one would
block every later publish until someone removes it or it expires, and a lease long enough for
a 100k-file publish needs renewing while it runs; a failed condition costs nothing until it
happens. A publish whose first write of the record fails has uploaded nothing and stops; one
whose last write fails has raced another: it writes the union of both records, unsettled
(``settle_after_race``), and the next publish lists the whole target and converges to its site.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import time
from typing import Any, NamedTuple

from ..console import progress
from ..errors import UserError
from .common import (PHASES, STATE_NAME, PENDING_NAME, LocalFile, Plan, PublishSettings, SiteFiles, SiteFileGone,
                     Target, Upload, describe, headers_digest, is_fingerprinted, log, rules_fingerprint)
from .plan import assign_phases, change_reason, split_extras, summary
from .record import Entry, Record, RecordTable, StoredRecord, is_plain_md5, owned_keys
from .s3_journal import plan_from_journal, why_not
from . import s3_store
from .s3_store import (MULTIPART_THRESHOLD, RecordRaced, RemoteObject, RequestCounter, clear_pending,
                       configure_website, delete_keys, get_pending, get_record, invalidate, invalidation_paths,
                       list_remote, mark_pending, parallel, read_record, s3_client_for, s3_errors, s3_failure,
                       spot_check, upload_one, write_record)

# Writes of the merged record after a race, each after reading the record again (a third publish may write too).
RACE_ATTEMPTS = 5


def plan_s3(client, target: Target, files: list[LocalFile], remote: dict[str, RemoteObject], record: Record | None,
            settings: PublishSettings, published_before_records: bool = False) -> tuple[Plan, Record, dict[str, Entry]]:
    """Decide what to upload and delete.

    Returns the plan, the record to write before the first upload (what the target
    will hold if the publish stops anywhere: the old files, and the new ones,
    unconfirmed) and the entries that stay true after the publish (uploads add theirs).
    """
    existing = set(remote) - {STATE_NAME, PENDING_NAME}
    owned = owned_keys(record, existing, target.uri, settings, published_before_records)
    entries = record.files if record else {}

    uploads, skipped, to_head = [], [], []
    staying: dict[str, Entry] = {}  # key -> its entry, for files that stay as they are
    for f in files:
        obj = remote.get(f.key)
        if obj is None:
            uploads.append(Upload(f, "new"))
            continue
        entry = entries.get(f.key) if f.key in owned else None
        if entry and entry.md5 and entry.etag == obj.etag:  # the object is still what we uploaded
            reason = change_reason(entry.md5, entry.headers, f)
            if reason:
                uploads.append(Upload(f, reason))
            else:
                skipped.append(f)
                staying[f.key] = entry  # equal to a new Entry(f.md5, f.headers_hash, obj.etag)
        elif is_plain_md5(obj.etag) and obj.etag != f.md5:
            uploads.append(Upload(f, "content changed"))
        else:
            to_head.append(f)  # same bytes but headers unknown, or a multipart/SSE-KMS ETag: ask the object

    def head(f: LocalFile) -> dict:
        return client.head_object(Bucket=target.bucket, Key=target.prefix + f.key)

    for f, response in zip(to_head, parallel(to_head, head, settings.concurrency)):
        metadata = response.get("Metadata", {})
        etag = remote[f.key].etag
        remote_md5 = metadata.get("md5") or (etag if is_plain_md5(etag) else None)
        remote_headers = metadata.get("headers") or headers_digest(response)
        reason = "no checksum" if remote_md5 is None else change_reason(remote_md5, remote_headers, f)
        if reason:
            uploads.append(Upload(f, reason))
        else:
            skipped.append(f)
            staying[f.key] = Entry(f.md5, f.headers_hash, etag)

    warnings: list[str] = []
    deletes, deletes_skipped, foreign = split_extras(existing, owned, {f.key for f in files}, settings, warnings)
    assign_phases(uploads, new_keys={u.file.key for u in uploads if u.file.key not in remote})
    plan = Plan(uploads, skipped, deletes, deletes_skipped, warnings, foreign)

    unknown = Entry("", "", "")
    staying.update({key: entries.get(key, unknown) for key in deletes_skipped})
    before = {**staying, **{key: entries.get(key, unknown) for key in deletes},
              **{u.file.key: Entry(u.file.md5, u.file.headers_hash, "") for u in uploads}}
    return plan, Record(before), staying


@dataclasses.dataclass
class S3Publish:
    """One publish to S3 under way: what both modes share, and the figures its summary reports."""

    client: Any
    target: Target
    site: SiteFiles
    settings: PublishSettings
    started: float
    counter: RequestCounter = dataclasses.field(default_factory=RequestCounter)
    extra: dict = dataclasses.field(default_factory=lambda: {"invalidation": None, "website": None, "remote_view": ""})
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    files: list[LocalFile] = dataclasses.field(default_factory=list)
    plan: Plan = dataclasses.field(default_factory=lambda: Plan([], [], [], [], []))
    phase: str = ""  # where a failure happened, for its message
    done: int = 0  # uploads finished
    site_figures: dict = dataclasses.field(default_factory=dict)  # following the journal: the site's own counts

    def summary(self, deleted: int) -> dict:
        return {**summary(self.target, self.files, self.plan, self.settings, self.started, deleted,
                          self.counter.counts, self.timings, **self.extra), **self.site_figures}


class JournalPlan(NamedTuple):
    plan: Plan
    files: list[LocalFile]  # only what render wrote
    pending: dict[str, Entry]  # what the pending object holds before the uploads
    table: RecordTable
    stored: StoredRecord


def publish_s3(target: Target, site: SiteFiles, settings: PublishSettings, started: float,
               client=None, published_before_records: bool = False) -> dict:
    run = S3Publish(client or s3_client_for(settings), target, site, settings, started)
    run.client.meta.events.register("before-send.s3", run.counter)
    errors = s3_errors()
    try:
        stored, followed, clock = None, None, time.monotonic()
        if site.journal is not None:  # the record first: the journal plan needs it, the full diff reuses it
            stored = get_record(run.client, target)
            followed = follow_journal(run, stored)
            run.timings["journal"] = time.monotonic() - clock
        if followed is not None:
            publish_following_journal(run, followed)
        else:
            publish_full_diff(run, stored, published_before_records)
    except errors as exc:
        during = f" in phase {run.phase!r} after {run.done} of {len(run.plan.uploads)} uploads" if run.phase else ""
        raise s3_failure(target, exc, during) from None
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):  # the stage walks the site and publishes again
            raise SiteFileGone(str(exc)) from None
        raise UserError(f"publish to {target.uri} failed reading the site: {exc}",
                        "do not render while publishing; re-run the publish") from None
    finally:
        run.client.meta.events.unregister("before-send.s3", run.counter)
    if settings.dry_run:
        return run.summary(0)
    invalidate_changed(run, errors)
    return run.summary(len(run.plan.deletes))


def follow_journal(run: S3Publish, stored: StoredRecord) -> JournalPlan | None:
    """The plan from render's journal when the record allows it (s3_journal), else None."""
    table = stored.table()
    why = why_not(table, stored.marked, run.site.journal, run.settings)
    planned = why or plan_from_journal(run.client, run.target, table, run.site.journal, run.site.root, run.settings)
    if isinstance(planned, str):
        run.extra["journal"] = f"not followed: {planned}"
        return None
    run.extra["remote_view"] = "record and render's journal"
    return JournalPlan(*planned, table, stored)


def publish_following_journal(run: S3Publish, followed: JournalPlan) -> None:
    """Upload what render wrote, delete what it removed, change the record's columns."""
    plan, table, journal = followed.plan, followed.table, run.site.journal
    run.plan, run.files = plan, followed.files
    # The site's figures: the record holds last night's keys, render's manifest tonight's bytes.
    new = sum(1 for upload in plan.uploads if upload.reason == "new")
    figures = {"files": len(table.keys) - len(plan.deletes) + new, "bytes": run.site.rendered_bytes,
               "hashed": len(followed.files)}
    run.site_figures = {**figures, "skipped": figures["files"] - len(plan.uploads)}
    if run.settings.dry_run:
        return
    marked = False
    if plan.uploads:  # a failure from here on still leaves every upload owned (the pending object)
        mark_pending(run.client, run.target, Record(followed.pending))
        marked = True
    clock = time.monotonic()
    after = upload_phases(run)
    run.timings["upload"], clock = time.monotonic() - clock, time.monotonic()
    run.phase = "deletes"
    delete_keys(run.client, run.target, plan.deletes)
    if plan.uploads or plan.deletes or table.generation != journal.generation:
        table.update(after, plan.deletes, journal.generation, rules_fingerprint(run.settings))
        # Unmarked, naming tonight's generation; after a race, the union of both records, unsettled.
        write_final_record(run, table, followed.stored.etag, lambda: {key: table.get(key) for key in table.keys})
    if marked:
        clear_pending(run.client, run.target)
    # ``files`` holds only what render wrote; the record holds the site's keys.
    finish_website(run, table.get("404.html") is not None, clock)


def publish_full_diff(run: S3Publish, stored: StoredRecord | None, published_before_records: bool) -> None:
    """Compare every site file with what the record (or a listing) says the target holds."""
    client, target, settings = run.client, run.target, run.settings
    paths = run.site.paths()
    # Reading the record (and listing) mostly waits on the store; hash the local files meanwhile.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as background:
        view = background.submit(remote_view, run, paths, stored)
        clock = time.monotonic()
        run.files = describe(paths, settings, compress=settings.gzip, cache=run.site.cache)
        run.timings["scan"] = time.monotonic() - clock
        remote, record, stored = view.result()
    clock = time.monotonic()
    run.plan, before, after = plan_s3(client, target, run.files, remote, record, settings, published_before_records)
    run.timings["plan"], clock = time.monotonic() - clock, time.monotonic()
    if settings.dry_run:
        return
    plan, marked, expected = run.plan, stored.marked, stored.etag
    current = record  # what the target's record says now
    if (plan.uploads or plan.deletes) and not before.same_as(record):
        # From here on, a failure still leaves every upload owned: in the record, or in the pending
        # object its mark points to (a few KB, not the whole record) when the record is of this version.
        if record is not None and stored.by_this_version and not marked:
            changes = {key: entry for key, entry in before.files.items() if record.files.get(key) != entry}
            if changes:  # none: the record already owns all (it keeps keys the target lost, no harm)
                mark_pending(client, target, Record(changes))
                marked = True
        else:
            expected, current = write_first_record(run, before, expected), before
    after = upload_phases(run, after)
    run.timings["upload"], clock = time.monotonic() - clock, time.monotonic()
    run.phase = "deletes"
    delete_keys(client, target, plan.deletes)
    # The target holds exactly tonight's site (nothing held back): the next night may follow its journal.
    exact = run.site.generation if not plan.deletes_skipped else None
    final = Record(after, generation=exact, rules=rules_fingerprint(settings) if exact else None)
    if marked or not final.same_as(current):
        write_final_record(run, final, expected, lambda: final.files)  # unmarked
    if marked:
        clear_pending(client, target)
    finish_website(run, any(f.key == "404.html" for f in run.files), clock)


def remote_view(run: S3Publish, paths: list[tuple[str, str]], stored: StoredRecord | None
                ) -> tuple[dict[str, RemoteObject], Record | None, StoredRecord]:
    """What the target holds: from the record (``stored`` already, or read here) when it can be
    trusted, else from a full listing."""
    client, target, settings = run.client, run.target, run.settings
    clock = time.monotonic()
    stored = stored or get_record(client, target)
    if stored.marked:
        stored.pending = get_pending(client, target)
    record = read_record(stored, target, {}, settings)
    if settings.verify:
        why = "--verify"
    elif record is None:
        why = "no record" if stored.body is None else "no readable record"
    elif record.unsettled:
        why = "the record is unsettled (two publishes overlapped)"
    elif not record.confirmed:
        why = "the record has unconfirmed entries"
    elif settings.adopt:
        why = "--adopt (files not in the record are taken over too)"
    elif len(record.files) <= s3_store.LIST_PAGE:
        why = "one listing page covers it"
    else:
        why = spot_check(client, target, list(record.files), lambda key: record.files[key].etag,
                         settings.concurrency)
    if why:
        remote = list_remote(client, target, [key for key, _ in paths], settings.concurrency)
        record = read_record(stored, target, remote, settings)
        run.extra["remote_view"] = f"listing: {why}"
    else:
        remote = {key: RemoteObject(entry.etag, 0) for key, entry in record.files.items()}
        run.extra["remote_view"] = "record"
    run.timings["list"] = time.monotonic() - clock
    return remote, record, stored


def upload_phases(run: S3Publish, after: dict[str, Entry] | None = None) -> dict[str, Entry]:
    """Upload the plan's files phase by phase; returns ``after`` with each upload's confirmed entry."""
    from boto3.s3.transfer import TransferConfig

    after = {} if after is None else after
    transfer = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_THRESHOLD,
                              max_concurrency=4)
    bar = progress(len(run.plan.uploads), "publish", unit="file")

    def upload_counted(item):
        etag = upload_one(run.client, run.target, item, transfer)
        bar.update(1)
        return etag

    for run.phase in PHASES:
        batch = [u for u in run.plan.uploads if u.phase == run.phase]
        if batch:
            log.info("publish %s: phase %s, %d files", run.target.uri, run.phase, len(batch))
        etags = parallel(batch, upload_counted, run.settings.concurrency)
        for upload, etag in zip(batch, etags):
            after[upload.file.key] = Entry(upload.file.md5, upload.file.headers_hash, etag)
        run.done += len(batch)
    bar.close()
    return after


def write_first_record(run: S3Publish, record: Record, expected: str | None) -> str:
    """The record before the uploads, over the one this publish read; returns its ETag."""
    try:
        return write_record(run.client, run.target, record, expected)
    except RecordRaced:
        raise UserError(f"publish to {run.target.uri}: another publish wrote its record while this one planned; "
                        "nothing was uploaded", "let the other publish finish, then publish again") from None


def write_final_record(run: S3Publish, record: Record | RecordTable, expected: str | None, entries) -> None:
    """The record after the uploads, over the one this publish read or wrote; after a race, settled
    as ``settle_after_race`` says (``entries()``: the record's entries, only computed then)."""
    try:
        write_record(run.client, run.target, record, expected)
    except RecordRaced:
        settle_after_race(run, entries())


def settle_after_race(run: S3Publish, ours: dict[str, Entry]) -> None:
    """Another publish wrote the record while this one ran: the target may hold either's files.

    Write the union of its record (and its pending entries) and ours, unsettled: every key either
    put up stays owned, and the next publish lists the whole target instead of following a journal
    or trusting a spot check, so it uploads what differs from its site and deletes the rest.
    """
    client, target = run.client, run.target
    for _ in range(RACE_ATTEMPTS):
        stored = get_record(client, target)
        if stored.marked:
            stored.pending = get_pending(client, target)
        theirs = read_record(stored, target, {}, run.settings)
        merged = Record({**(theirs.files if theirs else {}), **ours}, unsettled=True)
        try:
            write_record(client, target, merged, stored.etag)
            break
        except RecordRaced:
            continue
    else:
        raise UserError(f"publish to {target.uri}: other publishes kept writing its record; it may name "
                        "files the target lacks", "publish again with --verify once the others have finished")
    message = (f"another publish wrote to {target.uri} while this one ran: the record names both's files, "
               "unsettled, and the next publish compares the whole target")
    log.warning(message)
    run.plan.warnings.append(message)
    run.extra["raced"] = True


def finish_website(run: S3Publish, has_404: bool, clock: float) -> None:
    run.phase = "website"
    if run.settings.website:
        run.extra["website"] = configure_website(run.client, run.target, has_404)
    run.timings["finish"] = time.monotonic() - clock


def invalidate_changed(run: S3Publish, errors: tuple[type[Exception], ...]) -> None:
    """CloudFront: invalidate the changed paths that are not fingerprinted (a failure is a warning)."""
    changed = [u.file.key for u in run.plan.uploads if not is_fingerprinted(u.file.key)] + run.plan.deletes
    if not (run.settings.cloudfront_distribution_id and changed):
        return
    paths = invalidation_paths(run.target.prefix, changed)
    try:
        run.extra["invalidation"] = {"id": invalidate(run.settings.cloudfront_distribution_id, paths), "paths": paths}
    except errors as exc:
        message = f"CloudFront invalidation failed (the site itself is published): {exc}"
        log.warning(message)
        run.plan.warnings.append(message)
