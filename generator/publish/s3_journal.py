"""The S3 plan from render's journal: what render changed is what goes, whatever the size of the site.

Render declares the keys it wrote and removed since the previous generation
(``generator.site_journal``). When the record says the target holds exactly that
previous generation (``RecordTable.generation``: written only by a publish that
uploaded all of it, left no held-back delete and no pending upload), published with
today's header rules, and the spot check agrees with the store, then every file
render did not write is on the target as it is. So only the written files are read
and compared, only the removed ones deleted, and the record is changed in its
columns: no walk of the site, no digest cache, no object per recorded key.

Anything else (no journal or record generation, another generation, other header
rules, a pending or unconfirmed record, a spot check that disagrees, more deletes
than ``max_deletes``, --verify, --adopt) returns why not, and s3_backend runs the
full diff, which is what settles those cases today.
"""

from __future__ import annotations

from pathlib import Path

from ..site_journal import Journal
from .common import LocalFile, Plan, PublishSettings, Target, Upload, describe, rules_fingerprint
from .plan import assign_phases, change_reason, too_many_deletes
from .record import Entry, RecordTable
from .s3_store import spot_check


def why_not(table: RecordTable | None, marked: bool, journal: Journal, settings: PublishSettings) -> str:
    """"" when the journal can be followed against this record, else the reason it cannot."""
    if settings.verify or settings.adopt:
        return "--verify" if settings.verify else "--adopt"
    if marked:
        return "the record is marked pending"
    if table is None:
        return "the record names no generation"
    if table.generation not in (journal.previous, journal.generation):
        return "the target holds another generation than the one render started from"
    if table.rules != rules_fingerprint(settings):
        return "the header rules changed"
    if not table.confirmed:
        return "the record has unconfirmed entries"
    return ""


def plan_from_journal(client, target: Target, table: RecordTable, journal: Journal, site_dir: Path,
                      settings: PublishSettings) -> tuple[Plan, list[LocalFile], dict[str, Entry]] | str:
    """The plan, the written files, and the entries the pending object must hold before uploads;
    or why the journal cannot be followed (a spot check that disagrees, too many deletes)."""
    why = spot_check(client, target, table.keys, table.etag, settings.concurrency)
    if why:
        return why
    # A target that already holds tonight's generation (published before): nothing to do.
    written, removed = (journal.written, journal.removed) if table.generation == journal.previous else ((), ())
    deletes = sorted(key for key in removed if table.get(key) is not None)
    if too_many_deletes(len(deletes), settings):  # the full diff holds them back and says so
        return "more deletes than max_deletes"
    root = f"{site_dir}/"
    files = describe([(key, root + key) for key in sorted(written)], settings, compress=settings.gzip)
    uploads, skipped = [], []
    for f in files:
        entry = table.get(f.key)
        reason = "new" if entry is None else change_reason(entry.md5, entry.headers, f)
        if reason:
            uploads.append(Upload(f, reason))
        else:
            skipped.append(f)
    assign_phases(uploads, new_keys={u.file.key for u in uploads if u.reason == "new"})
    pending = {u.file.key: Entry(u.file.md5, u.file.headers_hash, "") for u in uploads}
    return Plan(uploads, skipped, deletes, [], []), files, pending
