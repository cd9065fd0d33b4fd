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
"""

from __future__ import annotations

import concurrent.futures
import time

from ..console import progress
from ..errors import UserError
from .common import (PENDING_NAME, PHASES, STATE_NAME, LocalFile, Plan, PublishSettings, SiteFiles, Target, Upload,
                     describe, headers_digest, is_fingerprinted, log, rules_fingerprint)
from .plan import assign_phases, change_reason, split_extras, summary
from .record import Entry, Record, RecordTable, is_compact, is_plain_md5, owned_keys, with_pending
from .s3_journal import plan_from_journal, why_not
from . import s3_store
from .s3_store import (MULTIPART_THRESHOLD, RemoteObject, RequestCounter, clear_pending, configure_website,
                       delete_keys, get_record_body, invalidate, invalidation_paths, list_remote, mark_pending,
                       parallel, s3_client_for, s3_errors, s3_failure, spot_check, upload_one, write_record)
from .s3_store import read_record as read_stored


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


def publish_s3(target: Target, site: SiteFiles, settings: PublishSettings, started: float,
               client=None, published_before_records: bool = False) -> dict:
    from boto3.s3.transfer import TransferConfig

    client = client or s3_client_for(settings)
    counter = RequestCounter()
    client.meta.events.register("before-send.s3", counter)
    errors = s3_errors()
    extra = {"invalidation": None, "website": None, "remote_view": ""}
    timings: dict[str, float] = {}
    files: list[LocalFile] = []
    plan = Plan([], [], [], [], [])
    phase, done = "", 0

    def follow_journal(body: bytes | None, marked: bool) -> tuple[Plan, list[LocalFile], dict[str, Entry],
                                                                    RecordTable] | None:
        """The plan from render's journal when the record (``body``) allows it (s3_journal), else None."""
        table = RecordTable.parse(body)
        why = why_not(table, marked, site.journal, settings)
        planned = why or plan_from_journal(client, target, table, site.journal, site.root, settings)
        if isinstance(planned, str):
            extra["journal"] = f"not followed: {planned}"
            return None
        extra["remote_view"] = "record and render's journal"
        return (*planned, table)

    def remote_view(paths: list[tuple[str, str]],
                    fetched: tuple[bytes | None, bool] | None) -> tuple[dict[str, RemoteObject], Record | None,
                                                                        bool, bool]:
        """What the target holds: from the record (``fetched`` already, or read here) when it can be
        trusted, else from a full listing."""
        clock = time.monotonic()
        body, marked = fetched or get_record_body(client, target)
        pending = get_record_body(client, target, PENDING_NAME)[0] if marked else None

        def read_record(body, target, remote, settings) -> Record | None:
            record = read_stored(body, target, remote, settings) if body is not None else None
            return with_pending(record, pending, settings) if record is not None and marked else record

        record = read_record(body, target, {}, settings)
        if settings.verify:
            why = "--verify"
        elif record is None:
            why = "no record" if body is None else "no readable record"
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
            record = read_record(body, target, remote, settings)
            extra["remote_view"] = f"listing: {why}"
        else:
            remote = {key: RemoteObject(entry.etag, 0) for key, entry in record.files.items()}
            extra["remote_view"] = "record"
        timings["list"] = time.monotonic() - clock
        return remote, record, is_compact(body), marked

    try:
        # With a journal the record is read first (the journal plan needs it; the full diff reuses it).
        fetched, followed, clock = None, None, time.monotonic()
        if site.journal is not None:
            fetched = get_record_body(client, target)
            followed = follow_journal(*fetched)
            timings["journal"] = time.monotonic() - clock
        if followed is not None:
            plan, files, pending, table = followed
            # The site's figures: the record holds last night's keys, render's manifest tonight's bytes.
            new = sum(1 for upload in plan.uploads if upload.reason == "new")
            site_figures = {"files": len(table.keys) - len(plan.deletes) + new, "bytes": site.rendered_bytes,
                            "hashed": len(files)}
            site_figures["skipped"] = site_figures["files"] - len(plan.uploads)
            if settings.dry_run:
                return {**summary(target, files, plan, settings, started, 0, counter.counts, timings, **extra),
                        **site_figures}
            marked = False
            if plan.uploads:  # a failure from here on still leaves every upload owned (the pending object)
                mark_pending(client, target, Record(pending))
                marked = True
            after: dict[str, Entry] = {}
        else:
            site_figures = {}
            paths = site.paths()
            # Reading the record (and listing) mostly waits on the store; hash the local files meanwhile.
            with concurrent.futures.ThreadPoolExecutor(max_workers=1) as background:
                view = background.submit(remote_view, paths, fetched)
                clock = time.monotonic()
                files = describe(paths, settings, compress=settings.gzip, cache=site.cache)
                timings["scan"] = time.monotonic() - clock
                remote, record, compact, marked = view.result()
            clock = time.monotonic()
            plan, before, after = plan_s3(client, target, files, remote, record, settings, published_before_records)
            timings["plan"], clock = time.monotonic() - clock, time.monotonic()
            if settings.dry_run:
                return summary(target, files, plan, settings, started, 0, counter.counts, timings, **extra)
            stored = record  # what the target's record says now
        clock = time.monotonic()
        if followed is None and (plan.uploads or plan.deletes) and not before.same_as(record):
            # From here on, a failure still leaves every upload owned: in the record, or in the pending
            # object its mark points to (a few KB, not the whole record) when the record is of this version.
            if record is not None and compact and not marked:
                changes = {key: entry for key, entry in before.files.items() if record.files.get(key) != entry}
                if changes:  # none: the record already owns all (it keeps keys the target lost, no harm)
                    mark_pending(client, target, Record(changes))
                    marked = True
            else:
                write_record(client, target, before)
                stored = before
        transfer = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_THRESHOLD,
                                  max_concurrency=4)
        bar = progress(len(plan.uploads), "publish", unit="file")

        def upload_counted(item):
            etag = upload_one(client, target, item, transfer)
            bar.update(1)
            return etag

        for phase in PHASES:
            batch = [u for u in plan.uploads if u.phase == phase]
            if batch:
                log.info("publish %s: phase %s, %d files", target.uri, phase, len(batch))
            etags = parallel(batch, upload_counted, settings.concurrency)
            for upload, etag in zip(batch, etags):
                after[upload.file.key] = Entry(upload.file.md5, upload.file.headers_hash, etag)
            done += len(batch)
        bar.close()
        timings["upload"], clock = time.monotonic() - clock, time.monotonic()
        phase = "deletes"
        delete_keys(client, target, plan.deletes)
        rules = rules_fingerprint(settings)
        if followed is not None:
            if plan.uploads or plan.deletes or table.generation != site.journal.generation:
                table.update(after, plan.deletes, site.journal.generation, rules)
                write_record(client, target, table)  # unmarked, naming tonight's generation
        else:
            # The target holds exactly tonight's site (nothing held back): the next night may follow its journal.
            exact = site.generation if not plan.deletes_skipped else None
            final = Record(after, generation=exact, rules=rules if exact else None)
            if marked or not final.same_as(stored):
                write_record(client, target, final)  # unmarked
        if marked:
            clear_pending(client, target)
        phase = "website"
        if settings.website:
            # Following the journal, ``files`` holds only what render wrote; the record holds the site's keys.
            has_404 = table.get("404.html") is not None if followed else any(f.key == "404.html" for f in files)
            extra["website"] = configure_website(client, target, has_404)
        timings["finish"] = time.monotonic() - clock
    except errors as exc:
        during = f" in phase {phase!r} after {done} of {len(plan.uploads)} uploads" if phase else ""
        raise s3_failure(target, exc, during) from None
    except OSError as exc:
        raise UserError(f"publish to {target.uri} failed reading the site: {exc}",
                        "do not render while publishing; re-run the publish") from None
    finally:
        client.meta.events.unregister("before-send.s3", counter)

    changed = [u.file.key for u in plan.uploads if not is_fingerprinted(u.file.key)] + plan.deletes
    if settings.cloudfront_distribution_id and changed:
        paths = invalidation_paths(target.prefix, changed)
        try:
            extra["invalidation"] = {"id": invalidate(settings.cloudfront_distribution_id, paths), "paths": paths}
        except errors as exc:
            message = f"CloudFront invalidation failed (the site itself is published): {exc}"
            log.warning(message)
            plan.warnings.append(message)
    return {**summary(target, files, plan, settings, started, len(plan.deletes), counter.counts, timings, **extra),
            **site_figures}
