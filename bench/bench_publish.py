"""Benchmark: content-diffed publish vs a size+mtime sync (what `aws s3 sync` does).

Both run in this process, on the same files, against one moto S3 server (a separate
process on loopback), with the same boto3 client settings and the same concurrency.
The site is a real render (generator.render) of the catalog's descriptions, ~10k files.

Scenarios, in order, each publishing into the bucket state the previous one left:
  full       first publish into an empty bucket
  unchanged  the night re-renders the same site into a fresh folder (a new worker):
             same bytes, newer mtimes
  1% pages   re-rendered again, and 1% of the HTML pages (random, seeded) have changed
  in place   the same worker re-renders: another 1% of the pages are new files, the others keep
             their mtimes (render hard-links unchanged pages), so size+mtime sees only those
  1% texts   informative: 1% of the descriptions get new words and generator.render
             re-renders the site (the item pages, every listing that shows them, the
             search index...), to show what a real edit costs

Usage: python bench/bench_publish.py [--catalog CSV] [--concurrency 8] [--change 0.01] [--skip-texts]
Prints a table, then the ratios (last). Targets: the 1%-pages re-publish uploads <= 2% of
the bytes of the full publish, is >= 10x faster than it and >= 20x faster than size+mtime sync.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import mimetypes
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402

from generator.artifacts import manifest_path  # noqa: E402
from generator.publish import PublishSettings, _s3_client, publish  # noqa: E402
from generator.site_journal import declare  # noqa: E402

SHARED_DATA = ROOT.parent / "shared" / "data"
NIGHT = "2026-11-25"
IN_PLACE = "in place"


# --- the moto server ----------------------------------------------------------------------------

def start_moto() -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    return wait_for_moto(process, url, seconds=30)


def wait_for_moto(process: subprocess.Popen, url: str, seconds: float) -> tuple[subprocess.Popen, str]:
    """Poll the server until it answers (or its process ends, or ``seconds`` pass)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
            return process, url
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"the moto server at {url} did not start")


# --- the site -----------------------------------------------------------------------------------

def descriptions(catalog: Path | None) -> list[dict]:
    if catalog and catalog.is_file():
        from generator.ingest import IngestSettings, load_catalog

        entries = load_catalog(str(catalog), IngestSettings())
        return [{"text": e.description, "type": e.type or None, "genre": e.main_genre or None} for e in entries]
    print(f"(no catalog at {catalog}; using synthetic descriptions)")
    rng = random.Random(7)
    words = "a detective family secret city love war young old village island mystery friends journey".split()
    genres = ["Dramas", "Comedies", "Documentaries", "Thrillers", "Horror Movies", "Kids' TV"]
    return [{"text": " ".join(rng.choice(words) for _ in range(rng.randint(18, 40))).capitalize() + f" ({n}).",
             "type": rng.choice(["Movie", "TV Show"]), "genre": rng.choice(genres)} for n in range(8800)]


def render_site(records: list[dict], work: Path, name: str) -> Path:
    """Render ``records`` into a fresh folder ``work/name`` (every file written now: new mtimes)."""
    from generator.render import RenderSettings, render

    kept = work / f"{name}.jsonl"
    with kept.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps({**record, "terminated": True}) + "\n")
    site = work / name
    render(kept, site, RenderSettings(), night=NIGHT)
    return site


def copy_fresh(site: Path, destination: Path) -> Path:
    """The same bytes with new mtimes, as a re-render on another worker leaves them (with render's manifest)."""
    shutil.copytree(site, destination, copy_function=shutil.copyfile)
    shutil.copyfile(manifest_path(site), manifest_path(destination))
    return destination


def change_pages(site: Path, fraction: float, seed: int = 1) -> list[str]:
    pages = sorted(p for p in site.rglob("*.html"))
    chosen = random.Random(seed).sample(pages, max(1, round(len(pages) * fraction)))
    for page in chosen:
        page.write_bytes(page.read_bytes().replace(b"</body>", b"<!-- edited -->\n</body>", 1))
    return [p.relative_to(site).as_posix() for p in chosen]


def declare_render(site: Path, written: dict[str, str]) -> None:
    """What render declares after writing ``written`` (key -> MD5): the site journal from the site's
    generation, and its manifest naming the next (generator.site_journal)."""
    manifest = json.loads(manifest_path(site).read_text(encoding="utf-8"))
    manifest["generation"] = declare(site, manifest.get("generation"), written, [])
    manifest_path(site).write_text(json.dumps(manifest), encoding="utf-8")


class Change:
    """Edited copies of some pages, switched in and out by hard links (O(change), not O(site)).

    An edit is a new file (new inode and mtime), as render writes a changed page; switching back
    puts the old inode (and mtime) in place, as render's hard link of an unchanged page does. Each
    switch declares the pages it wrote in the site journal, as render does.
    """

    def __init__(self, site: Path, keys: list[str], store: Path):
        self.site, self.keys, self.store = site, keys, store
        (store / "old").mkdir(parents=True)
        (store / "new").mkdir(parents=True)
        for number, key in enumerate(keys):
            page = site / key
            os.link(page, store / "old" / str(number))
            edited = page.read_bytes().replace(b"</body>", b"<!-- edited -->\n</body>", 1)
            (store / "new" / str(number)).write_bytes(edited)

    def apply(self, version: str) -> None:
        switched = {}
        for number, key in enumerate(self.keys):
            source, page = self.store / version / str(number), self.site / key
            if os.stat(source).st_ino == os.stat(page).st_ino:
                continue  # rename() onto another link of the same file would do nothing
            temporary = self.site / f"{key}.switch"
            os.link(source, temporary)
            os.replace(temporary, page)
            switched[key] = hashlib.md5(page.read_bytes()).hexdigest()
        declare_render(self.site, switched)

    def measure(self, publish_once) -> dict:
        """Publish the change (timed), then switch it back and publish again (untimed) for the next run."""
        self.apply("new")
        result = publish_once()
        self.apply("old")
        publish_once()
        return result


def site_stats(site: Path) -> tuple[int, int]:
    files = [p for p in site.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


# --- the two strategies -------------------------------------------------------------------------

class Counted:
    """An S3 client whose HTTP requests are counted."""

    def __init__(self, client):
        self.client = client
        self.requests: Counter = Counter()
        self._lock = threading.Lock()
        self.client.meta.events.register("before-send.s3", self._count)

    def _count(self, event_name, **_):
        with self._lock:
            self.requests[event_name.rsplit(".", 1)[-1]] += 1

    def take(self) -> Counter:
        counts, self.requests = self.requests, Counter()
        return counts


def content_publish(counted: Counted, site: Path, bucket: str, concurrency: int) -> dict:
    started = time.perf_counter()
    summary = publish(site, f"s3://{bucket}/site", PublishSettings(concurrency=concurrency), client=counted.client)
    requests = counted.take()
    return {"files": summary["uploaded"], "bytes": summary["uploaded_bytes"], "puts": requests["PutObject"],
            "requests": sum(requests.values()), "seconds": time.perf_counter() - started,
            "timings": summary["timings"], "remote_view": summary.get("remote_view", "")}


def repeated(runs: int, measure, reset=None) -> dict:
    """The median-time run of ``measure`` (the machine is shared: single small timings are noisy)."""
    results = []
    for number in range(runs):
        if number and reset:
            reset()
        results.append(measure())
    results.sort(key=lambda r: r["seconds"])
    median = dict(results[len(results) // 2])
    median["samples"] = [round(r["seconds"], 2) for r in results]
    return median


def size_mtime_sync(counted: Counted, site: Path, bucket: str, concurrency: int) -> dict:
    """`aws s3 sync`'s rule: upload when the remote is missing, its size differs or the local mtime is newer."""
    started = time.perf_counter()
    client = counted.client
    remote = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="site/"):
        for item in page.get("Contents", []):
            remote[item["Key"][len("site/"):]] = (item["Size"], item["LastModified"].timestamp())
    todo = []
    for path in sorted(p for p in site.rglob("*") if p.is_file()):
        key = path.relative_to(site).as_posix()
        stat = path.stat()
        size, modified = remote.get(key, (None, 0.0))
        if size != stat.st_size or stat.st_mtime > modified:
            todo.append((key, path))

    def upload(job) -> int:
        key, path = job
        body = path.read_bytes()
        client.put_object(Bucket=bucket, Key=f"site/{key}", Body=body,
                          ContentType=mimetypes.guess_type(key)[0] or "application/octet-stream")
        return len(body)

    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        sent = sum(pool.map(upload, todo))
    requests = counted.take()
    return {"files": len(todo), "bytes": sent, "puts": requests["PutObject"], "requests": sum(requests.values()),
            "seconds": time.perf_counter() - started}


# --- main ---------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalog", type=Path, default=SHARED_DATA / "netflix_titles_2021.csv")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--change", type=float, default=0.01, help="share of pages changed (default 0.01)")
    parser.add_argument("--skip-texts", action="store_true", help="skip the informative '1%% texts' scenario")
    parser.add_argument("--repeat", type=int, default=3, help="content re-publishes timed this many times (median)")
    args = parser.parse_args()

    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    records = descriptions(args.catalog)
    for record in records:
        record["id"] = hashlib.sha256(record["text"].encode()).hexdigest()[:12]
    work = Path(tempfile.mkdtemp(prefix="bench-publish-"))
    process, url = start_moto()
    os.environ["AWS_ENDPOINT_URL"] = url
    try:
        # The publisher's client; for the sync, a plain boto3 client with the same Config
        # (it needs LastModified parsed, which the publisher's client skips).
        publisher_client = _s3_client(PublishSettings(concurrency=args.concurrency))
        content = Counted(publisher_client)
        sync = Counted(boto3.client("s3", endpoint_url=url, config=publisher_client.meta.config))
        for bucket in ("bench-content", "bench-sync"):
            content.client.create_bucket(Bucket=bucket)
        content.take()

        started = time.perf_counter()
        site = render_site(records, work, "night1")
        files, total = site_stats(site)
        rendered = time.perf_counter() - started
        texts_note = ""
        if not args.skip_texts:  # rendered now, published last (with fresh mtimes)
            rng = random.Random(2)
            edited_records = [dict(r) for r in records]
            chosen = rng.sample(edited_records, max(1, round(len(records) * args.change)))
            for record in chosen:
                record["text"] += " Nobody saw it coming."
            texts_rendered = render_site(edited_records, work, "texts-render")
            texts_note = f"{len(chosen)} descriptions edited, re-rendered"
        print(f"site: {files} files, {total / 1e6:.1f} MB (rendered in {rendered:.1f} s) "
              f"from {len(records)} descriptions; moto server at {url}; concurrency {args.concurrency}")

        def run(name: str, path: Path, note: str, runs: int = 1, reset=None) -> None:
            measure = lambda: content_publish(content, path, "bench-content", args.concurrency)  # noqa: E731
            rows.append((name, "content", repeated(runs, measure, reset), note))
            rows.append((name, "size+mtime", size_mtime_sync(sync, path, "bench-sync", args.concurrency), note))

        rows: list = []
        run("full", site, "")
        # Each later site is written after the previous publish, as the next night's render would be.
        unchanged = copy_fresh(site, work / "night2")
        run("unchanged", unchanged, "same bytes, new mtimes", args.repeat)
        changed = copy_fresh(unchanged, work / "night3")
        edited = change_pages(changed, args.change)
        revert = lambda: content_publish(content, unchanged, "bench-content", args.concurrency)  # noqa: E731
        run(f"{args.change:.0%} pages", changed, f"{len(edited)} HTML pages edited", args.repeat, revert)
        # A re-render on the same worker: render hard-links the pages it did not change, so their
        # mtimes stay older than their upload and size+mtime sees only the pages it rewrote (another 1%).
        pages = sorted(p.relative_to(changed).as_posix() for p in changed.rglob("*.html"))
        inplace = Change(changed, random.Random(5).sample(pages, len(edited)), work / "in-place")
        for strategy, bucket, client, publish_once in (("content", "bench-content", content, content_publish),
                                                      ("size+mtime", "bench-sync", sync, size_mtime_sync)):
            measure = lambda: inplace.measure(  # noqa: E731
                lambda: publish_once(client, changed, bucket, args.concurrency))
            rows.append((IN_PLACE, strategy, repeated(args.repeat, measure), "same worker: other pages keep mtimes"))
        if not args.skip_texts:
            run(f"{args.change:.0%} texts", copy_fresh(texts_rendered, work / "night4"), texts_note)
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)

    print()
    print(f"{'scenario':<11} {'strategy':<11} {'files up':>9} {'MB up':>8} {'% bytes':>8} {'PUTs':>6} "
          f"{'requests':>9} {'seconds':>8}  note")
    for name, strategy, r, note in rows:
        if "timings" in r:
            steps = ", ".join(f"{step} {seconds:.2f}" for step, seconds in r["timings"].items())
            samples = f"; runs {r['samples']}" if len(r["samples"]) > 1 else ""
            note = f"{note}{'; ' if note else ''}{steps}{samples}"
        print(f"{name:<11} {strategy:<11} {r['files']:>9} {r['bytes'] / 1e6:>8.2f} {100 * r['bytes'] / total:>7.2f}% "
              f"{r['puts']:>6} {r['requests']:>9} {r['seconds']:>8.2f}  {note}")

    result = {(name, strategy): r for name, strategy, r, _ in rows}
    full = result[("full", "content")]
    one = result[(f"{args.change:.0%} pages", "content")]
    one_sync = result[(f"{args.change:.0%} pages", "size+mtime")]
    same = result[("unchanged", "content")]
    same_sync = result[("unchanged", "size+mtime")]
    print()
    print(f"unchanged re-publish: content uploads {same['bytes']} bytes in {same['seconds']:.2f} s; "
          f"size+mtime uploads {same_sync['bytes'] / 1e6:.1f} MB in {same_sync['seconds']:.2f} s")
    print(f"1% pages vs size+mtime: {one_sync['bytes'] / max(one['bytes'], 1):.0f}x fewer bytes, "
          f"{one_sync['puts'] / max(one['puts'], 1):.0f}x fewer PUTs")
    t = one["timings"]
    print(f"1% pages re-publish, where the time goes: what the bucket holds {t['list']:.2f} s "
          f"({one['remote_view'] or 'listing'}; the local scan, "
          f"{t['scan']:.2f} s, runs meanwhile), planning {t['plan']:.2f} s, uploads {t['upload']:.2f} s "
          f"(total {one['seconds']:.2f} s)")
    share = one["bytes"] / full["bytes"]
    speed = full["seconds"] / one["seconds"]
    print(f"1% pages re-publish bytes / full publish bytes: {share:.2%} (target <= 2%: {'met' if share <= 0.02 else 'MISSED'})")
    print(f"full publish time / 1% pages re-publish time: {full['seconds']:.2f} s / {one['seconds']:.2f} s = "
          f"{speed:.1f}x (target >= 10x: {'met' if speed >= 10 else 'MISSED'})")
    # Same server, same files, same concurrency; the sync of a new worker's copy is one run (a second
    # would find every mtime older than its upload), the others are medians of --repeat runs.
    for label, ours, theirs in ((f"{args.change:.0%} pages, new worker (every mtime new)", one, one_sync),
                                (f"{args.change:.0%} pages, same worker (unchanged pages keep mtimes)",
                                 result[(IN_PLACE, "content")], result[(IN_PLACE, "size+mtime")])):
        ratio = theirs["seconds"] / ours["seconds"]
        # When both upload the same files, no publisher beats the sync by more than its time over those uploads.
        bound = theirs["seconds"] / ours["timings"]["upload"] if theirs["files"] == ours["files"] else None
        ceiling = f"; ceiling with these uploads: {bound:.1f}x" if bound else ""
        print(f"size+mtime sync time / content time, {label}: {theirs['seconds']:.2f} s / {ours['seconds']:.2f} s = "
              f"{ratio:.1f}x (target >= 20x: {'met' if ratio >= 20 else 'MISSED'}{ceiling})")


if __name__ == "__main__":
    main()
