"""The ownership record: every file this gallery published into a target, with its checksum and headers.

It lives in the target itself, as ``<target>/.publish-state.json`` (an S3 object
under the prefix, or a file in the published directory, swapped in with the
tree it describes), so any worker publishing there finds it. Publishing deletes
only keys in the record that the new site no longer has; files someone else put
in the target are left alone. A first publish into a non-empty target without a
record stops, unless ``publish.adopt`` takes the files over.

Format (version 3): JSON, gzip-compressed on S3 (``to_bytes(compress=True)``; read either way),
the file map as parallel arrays in key order, so a 100k-file record is a few MB and parses in C::

    {"version": 3, "headers": ["<headers digest>", ...], "keys": ["<key>", ...],
     "md5": ["<md5 of the bytes uploaded>", ...], "h": [<index into headers>, ...], "etag": ["<ETag>", ...]}

An ETag of ``"="`` is the key's MD5 (every plain upload). Optional ``"generation"`` and ``"rules"``:
the site generation (``generator.site_journal``) the target holds exactly and the header rules it was
published with; a publish following render's journal needs both (``RecordTable``). Optional
``"unsettled": true``: written by a publish that found another one had written the record while it ran
(``s3_backend.settle_after_race``); the entries are the union of both, and the next publish lists the
whole target instead of trusting them. Version 2 (read, not written) was
``{"version": 2, "files": {"<key>": ["<md5>", "<headers digest>", "<ETag>"]}}``. A publisher
older than version 3 cannot read a compressed record and so takes the target as holding files
that are not its own: it stops rather than delete anything.

The ETag (S3 only) is the one the store gave the upload; while the listing shows
the same ETag, the object still holds those bytes and headers, so no HEAD is
needed. An empty ETag marks an entry not confirmed yet: the S3 backend writes
the record once *before* its uploads with the files it is about to upload, so a
publish that dies halfway still owns what it put up.

Version 1 (before ownership) recorded only the header rules and non-MD5 ETags;
it meant "everything under the prefix is the site", so reading one adopts every
listed key, with its checksum where the ETag or the old record gives it.
"""

from __future__ import annotations

import bisect
import dataclasses
import gzip
import json
from typing import NamedTuple

from ..errors import UserError
from .common import STATE_NAME, PublishSettings, object_headers, headers_digest, rules_fingerprint

STATE_VERSION = 3
_GZIP_MAGIC = b"\x1f\x8b"
_PLAIN_MD5_LENGTH = 32


class Entry(NamedTuple):
    """A tuple, so the record's 100k entries are JSON arrays without a conversion each."""

    md5: str
    headers: str  # headers_digest of the headers it was published with
    etag: str = ""  # S3: the ETag the store gave it; "" = unconfirmed (or a file:// target)


@dataclasses.dataclass
class Record:
    files: dict[str, Entry]
    from_version_1: bool = False  # converted from a listing: only as good as that listing
    incomplete: bool = False  # marked pending, but the pending object is gone: entries may be missing
    # The site generation (generator.site_journal) the target holds exactly, and the header rules it was
    # published with (common.rules_fingerprint): what lets the next publish follow render's journal.
    generation: str | None = None
    rules: str | None = None
    unsettled: bool = False  # two publishes raced: the target may hold either's files (see the docstring)

    @property
    def confirmed(self) -> bool:
        """Every entry names the checksum and ETag the store holds (no upload left unconfirmed)."""
        return (not self.from_version_1 and not self.incomplete and not self.unsettled
                and all(entry.md5 and entry.etag for entry in self.files.values()))

    def to_bytes(self, compress: bool = False) -> bytes:
        keys = sorted(self.files)
        entries = [self.files[key] for key in keys]
        table: dict[str, int] = {}
        md5s = [entry.md5 for entry in entries]
        state = {"version": STATE_VERSION, "headers": None, "keys": keys, "md5": md5s,
                 "h": [table.setdefault(entry.headers, len(table)) for entry in entries],
                 "etag": ["=" if entry.etag == entry.md5 and entry.etag else entry.etag for entry in entries]}
        state["headers"] = list(table)
        if self.generation:
            state.update(generation=self.generation, rules=self.rules)
        if self.unsettled:
            state["unsettled"] = True
        return _encode(state, compress)

    def same_as(self, other: "Record | None") -> bool:
        return (other is not None and self.files == other.files
                and (self.generation, self.rules, self.unsettled) == (other.generation, other.rules, other.unsettled))


def _encode(state: dict, compress: bool) -> bytes:
    body = json.dumps(state, separators=(",", ":")).encode()
    return gzip.compress(body, compresslevel=1, mtime=0) if compress else body


def with_pending(record: Record, pending: bytes | None, settings: PublishSettings) -> Record:
    """A record marked pending, with the entries the pending object adds (see ``s3_store.mark_pending``).

    Those include the uploads of the publish that marked it, unconfirmed, so the record is not
    confirmed and the target is listed. Without a readable pending object, the record is incomplete.
    """
    changes = parse_record(pending, "the pending object", {}, settings) if pending is not None else None
    if changes is None:
        return dataclasses.replace(record, incomplete=True)
    return dataclasses.replace(record, files={**record.files, **changes.files})


def is_compact(body: bytes | None) -> bool:
    """Written compressed, so by this version of the record (the pending mark keeps its encoding headers)."""
    return body is not None and body[:2] == _GZIP_MAGIC


@dataclasses.dataclass
class StoredRecord:
    """The record object as the target holds it, before it is read: its bytes, its pending mark and the
    ETag this publish's own writes of the record are conditional on (``s3_store.write_record``).

    The one place that says what the bytes are: a version-3 table a publish may follow render's
    journal with (``table``), any version for the full diff (``record``), and whether this version
    of the publisher wrote it (``by_this_version``; older ones cannot read a pending mark).
    """

    body: bytes | None  # None: the target has no record
    marked: bool = False  # x-amz-meta-pending: a publish listed its uploads in the pending object
    etag: str | None = None
    pending: bytes | None = None  # the pending object, read when the record is marked and parsed

    @property
    def by_this_version(self) -> bool:
        return is_compact(self.body)

    def table(self) -> "RecordTable | None":
        return RecordTable.parse(self.body)

    def record(self, where: str, listed_etags: dict[str, str], settings: PublishSettings) -> Record | None:
        """The record of any version, with the pending object's entries when it is marked (parse_record)."""
        record = parse_record(self.body, where, listed_etags, settings)
        return with_pending(record, self.pending, settings) if record is not None and self.marked else record


def is_plain_md5(etag: str) -> bool:
    return len(etag) == _PLAIN_MD5_LENGTH and all(c in "0123456789abcdef" for c in etag)


def parse_record(body: bytes | None, where: str, listed_etags: dict[str, str],
                 settings: PublishSettings) -> Record | None:
    """The record read from the target (None: there is none, or it is unreadable, so none of ours).

    ``listed_etags``: key -> ETag of what the target holds ("" for a file:// target),
    used only to convert a version-1 state.
    """
    if body is None:
        return None
    try:
        state = json.loads(gzip.decompress(body) if body[:2] == _GZIP_MAGIC else body)
    except (ValueError, OSError, EOFError):
        return None
    if not isinstance(state, dict):
        return None
    version = state.get("version")
    if version == STATE_VERSION:
        return _from_version_3(state)
    if version == 2 and isinstance(state.get("files"), dict):
        return Record({key: Entry(*value) for key, value in state["files"].items()
                       if isinstance(value, list) and len(value) == 3})
    if version == 1:
        return _from_version_1(state, listed_etags, settings)
    if isinstance(version, int) and version > STATE_VERSION:
        raise UserError(f"the publish record {where} is version {version}, newer than this publisher understands",
                        "publish with the newer version of the gallery that wrote it")
    return None


def _from_version_3(state: dict) -> Record | None:
    """None if malformed (then there is no readable record: the target is not taken as ours)."""
    keys, md5s, indexes, etags, table = (state.get(name) for name in ("keys", "md5", "h", "etag", "headers"))
    if not (all(isinstance(column, list) for column in (keys, md5s, indexes, etags, table))
            and len(keys) == len(md5s) == len(indexes) == len(etags)):
        return None
    try:  # values of other types than strings never match a file, so they cost an upload, no harm
        headers = [table[index] for index in indexes]
        etags = [md5 if etag == "=" else etag for md5, etag in zip(md5s, etags)]
        files = dict(zip(keys, map(Entry, md5s, headers, etags)))
    except (IndexError, TypeError):
        return None
    if len(files) != len(keys):
        return None
    generation, rules = state.get("generation"), state.get("rules")
    site = (generation, rules) if isinstance(generation, str) and isinstance(rules, str) else (None, None)
    return Record(files, generation=site[0], rules=site[1], unsettled=state.get("unsettled") is True)


def _from_version_1(state: dict, listed_etags: dict[str, str], settings: PublishSettings) -> Record:
    rules_known = state.get("rules") == rules_fingerprint(settings)
    remembered = state.get("etags") or {}
    files = {}
    for key, etag in listed_etags.items():
        if key == STATE_NAME:
            continue
        md5 = etag if is_plain_md5(etag) else ""
        if not md5 and isinstance(remembered.get(key), list) and remembered[key][0] == etag:
            md5 = remembered[key][1]
        if md5 and rules_known:  # version 1 guaranteed rule-conform headers for its objects
            files[key] = Entry(md5, headers_digest(object_headers(key, settings, settings.gzip)), etag)
        else:
            files[key] = Entry("", "", "")  # ours, contents unconfirmed: checked against the store
    return Record(files, from_version_1=True)


def owned_keys(record: Record | None, existing: set[str], target_uri: str, settings: PublishSettings,
               published_before_records: bool = False) -> set[str]:
    """Keys of ``existing`` (what the target holds, record excluded) this gallery may overwrite or delete.

    ``published_before_records``: the site's last publish summary shows this very target, written by
    a publisher older than records; the target is taken as this gallery's, as that publisher did.
    """
    if settings.adopt or (record is None and published_before_records):
        return set(existing)
    if record is None:
        if existing:
            raise UserError(f"target {target_uri} already holds {len(existing)} files that this gallery did not "
                            "publish",
                            "pass --adopt to take them over, or choose an empty target")
        return set()
    return set(record.files) & existing


class RecordTable:
    """A version-3 record kept as its columns: read, changed and written again without an object per
    key, so a publish that follows render's journal costs the change, not the 100k entries."""

    _COLUMNS = ("keys", "md5", "h", "etag")

    def __init__(self, state: dict):
        self.state = state
        self.keys: list[str] = state["keys"]

    @classmethod
    def parse(cls, body: bytes | None) -> "RecordTable | None":
        """The table of a compressed version-3 record with a generation; None for anything else."""
        if body is None or body[:2] != _GZIP_MAGIC:
            return None
        try:
            state = json.loads(gzip.decompress(body))
        except (ValueError, OSError, EOFError):
            return None
        if not (isinstance(state, dict) and state.get("version") == STATE_VERSION and not state.get("unsettled")
                and isinstance(state.get("generation"), str) and isinstance(state.get("rules"), str)
                and all(isinstance(state.get(name), list) for name in (*cls._COLUMNS, "headers"))):
            return None
        keys, table = state["keys"], state["headers"]
        if not (len(keys) == len(state["md5"]) == len(state["h"]) == len(state["etag"])
                and all(isinstance(key, str) for key in keys) and all(a < b for a, b in zip(keys, keys[1:]))
                and all(isinstance(index, int) and 0 <= index < len(table) for index in set(state["h"]))):
            return None
        return cls(state)

    @property
    def generation(self) -> str:
        return self.state["generation"]

    @property
    def rules(self) -> str:
        return self.state["rules"]

    @property
    def confirmed(self) -> bool:
        return "" not in self.state["md5"] and "" not in self.state["etag"]

    def _index(self, key: str) -> int | None:
        index = bisect.bisect_left(self.keys, key)
        return index if index < len(self.keys) and self.keys[index] == key else None

    def get(self, key: str) -> Entry | None:
        index = self._index(key)
        if index is None:
            return None
        md5, etag = self.state["md5"][index], self.state["etag"][index]
        return Entry(md5, self.state["headers"][self.state["h"][index]], md5 if etag == "=" else etag)

    def etag(self, key: str) -> str | None:
        entry = self.get(key)
        return entry.etag if entry else None

    def update(self, entries: dict[str, Entry], deletes: list[str], generation: str, rules: str) -> None:
        """Put ``entries`` in (added in key order or replaced), take ``deletes`` out, name the generation."""
        state, columns = self.state, [self.state[name] for name in self._COLUMNS]
        table = {digest: index for index, digest in enumerate(state["headers"])}
        for key, entry in entries.items():
            h = table.setdefault(entry.headers, len(table))
            row = (key, entry.md5, h, "=" if entry.etag == entry.md5 and entry.etag else entry.etag)
            index = self._index(key)
            if index is None:
                index = bisect.bisect_left(self.keys, key)
                for column, value in zip(columns, row):
                    column.insert(index, value)
            else:
                for column, value in zip(columns[1:], row[1:]):
                    column[index] = value
        for key in deletes:
            index = self._index(key)
            if index is not None:
                for column in columns:
                    del column[index]
        state.update(headers=list(table), generation=generation, rules=rules)

    def to_bytes(self, compress: bool = True) -> bytes:
        return _encode(self.state, compress)
