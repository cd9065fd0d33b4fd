"""A rendered site's generation, and what its render changed: render declares it, publish reads it.

Render knows exactly which files it wrote (new or changed bytes) and which it
removed; every other file of the site is the previous site's very file, hard-linked
(``render.writer``). It declares that beside the site, so publish need not re-derive
it by walking and stat-ing every file of a 100k-file site:

- ``generation``: an id of the site's content, chained: the digest of the previous
  generation, of each written file's key and MD5, and of each removed key. The same
  render over the same previous site gives the same id; anything else gives another.
- ``<site>.changes.json`` (the journal): the generation, the previous one, and the
  keys written and removed since it. Render's manifest names the generation, so a
  journal left by another render is never taken for this one.

Publish follows the journal from the generation it knows: on S3, the one the
ownership record says the target holds (``publish.s3_journal``: only the written
files are read and compared); locally, the one the digest cache describes (the
files render did not write are taken from the cache without a stat,
``publish.digests``). Any other case (no journal, a render in between that was not
published, ``--verify``) walks the site as before. The accepted risk, in the README: a file edited by hand inside
the rendered site after render is not seen until the next render or ``--verify``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Iterable, Mapping

from .artifacts import atomic_write_bytes

JOURNAL_VERSION = 1


def journal_path(site_dir: Path) -> Path:
    """``<site>.changes.json`` beside the site (never part of what is published)."""
    return site_dir.parent / f"{site_dir.name}.changes.json"


def next_generation(previous: str | None, written: Mapping[str, str], removed: Iterable[str]) -> str:
    """The generation after ``previous`` once ``written`` (key -> MD5 of its bytes) and ``removed`` changed."""
    digest = hashlib.sha256(f"site generation after {previous or '-'}\n".encode())
    for key in sorted(written):
        digest.update(f"w {key} {written[key]}\n".encode())
    for key in sorted(removed):
        digest.update(f"r {key}\n".encode())
    return digest.hexdigest()[:32]


@dataclasses.dataclass(frozen=True)
class Journal:
    generation: str
    previous: str | None  # None: a first render (or after an unreadable one): no diff to follow
    written: frozenset[str]
    removed: frozenset[str]

    def to_bytes(self) -> bytes:
        return json.dumps({"version": JOURNAL_VERSION, "generation": self.generation, "previous": self.previous,
                           "written": sorted(self.written), "removed": sorted(self.removed)},
                          separators=(",", ":")).encode()


def declare(site_dir: Path, previous: str | None, written: Mapping[str, str], removed: Iterable[str]) -> str:
    """Write the journal of a render that changed ``written`` and ``removed``; returns the new generation.

    A first render (``previous`` None) lists no keys: there is nothing to diff against.
    """
    removed = frozenset(removed)
    generation = next_generation(previous, written, removed)
    keys = (frozenset(written), removed) if previous is not None else (frozenset(), frozenset())
    atomic_write_bytes(journal_path(site_dir), Journal(generation, previous, *keys).to_bytes())
    return generation


def generation_of(render_manifest: dict) -> str | None:
    """The generation a render manifest names (None: rendered before generations existed)."""
    generation = render_manifest.get("generation")
    return generation if isinstance(generation, str) else None


def read_journal(site_dir: Path, render_manifest: dict) -> Journal | None:
    """The journal of the site's current render (its manifest names the generation), else None."""
    generation = generation_of(render_manifest)
    if generation is None:
        return None
    try:
        state = json.loads(journal_path(site_dir).read_bytes())
        written, removed, previous = state["written"], state["removed"], state["previous"]
        if (state.get("version") != JOURNAL_VERSION or state.get("generation") != generation
                or not isinstance(previous, (str, type(None)))
                or not all(isinstance(key, str) for key in [*written, *removed])):
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return Journal(generation, previous, frozenset(written), frozenset(removed))
