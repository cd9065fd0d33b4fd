"""Benchmark: does a publish cost follow the change rather than the site? (issue 14)

One moto S3 server (a separate process) serves every bucket; ratios are printed last.
  size    a republish of a rendered site of ~10k files and of ~100k files (real renders of
          synthetic descriptions), after 1% of each site's pages changed, and after the same
          100 pages changed at both sizes (the change fixed, only the site grows).
          Target: at most 2x the time while the site grows 10x. With 1% of each site changed
          the large site uploads 10x the files, so its uploads alone grow ~10x: the target
          is judged on the fixed change, and the 1% rows show uploads and the rest apart.
          Each change is declared in the site journal, as render declares what it wrote.
  nights  a new night rendered (generator.render, with its archive) over a site of 1 archived
          night and over one of 30, then published.  Target: at most 1.5x the time.

The buckets are not built with 100k HTTP PUTs (~35 CPU minutes through moto): the server
process starts with its in-memory S3 backend already holding each site, put through moto's
backend API with the bytes, headers and x-amz-meta-* metadata the publisher uploads (so the
ETag is the MD5), and the publisher's ownership record beside them (``--serve``). Then one
publish per site, untimed and with nothing changed, builds the digest cache as last night's
publish would have, and a ``--verify`` publish (listing the bucket, re-reading every file)
must find nothing to upload: that checks the seeding.

Each timed publish is repeated (median): the changed files are switched back (hard links to
the old inodes, as render leaves unchanged files) and re-published untimed in between.

Usage: python bench/bench_publish_scale.py [--small 8800] [--large 88000] [--per-night 300] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_publish import Change, Counted, content_publish, descriptions, render_site, repeated, wait_for_moto  # noqa: E402
from generator.artifacts import manifest_path  # noqa: E402
from generator.publish import PublishSettings, _s3_client, publish  # noqa: E402

SHARED_DATA = ROOT.parent / "shared" / "data"
PREFIX = "site"
FIRST_NIGHT = "2026-10-01"


# --- the seeded moto server ---------------------------------------------------------------------

def serve(port: int, seeds: list[str]) -> None:
    """Child process: fill moto's S3 backend with each ``bucket=site_dir`` as published, then serve it."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends
    from moto.server import main as moto_main

    from generator.publish.common import scan_site, upload_body
    from generator.publish.record import Entry, Record

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for seed in seeds:
        bucket, site = seed.split("=", 1)
        backend.create_bucket(bucket, "us-east-1")
        entries = {}
        for f in scan_site(Path(site), PublishSettings(), compress=False):
            # What s3_store.upload_one sends: the body, the headers, the md5/headers metadata.
            key = backend.put_object(bucket, f"{PREFIX}/{f.key}", upload_body(f.path, f.headers))
            key.set_metadata({"Content-Type": f.headers["ContentType"], "Cache-Control": f.headers["CacheControl"],
                              "x-amz-meta-md5": f.md5, "x-amz-meta-headers": f.headers_hash})
            entries[f.key] = Entry(f.md5, f.headers_hash, key.etag.strip('"'))
        state = backend.put_object(bucket, f"{PREFIX}/.publish-state.json", Record(entries).to_bytes(compress=True))
        state.set_metadata({"Content-Type": "application/json", "Content-Encoding": "gzip",
                            "Cache-Control": "no-store"})
    moto_main(["-H", "127.0.0.1", "-p", str(port)])


def start_seeded_moto(seeds: dict[str, Path]) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, __file__, "--serve", str(port)]
    for bucket, site in seeds.items():
        command += ["--seed", f"{bucket}={site}"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Seeding 100k objects happens before the server answers: allow it minutes, not seconds.
    return wait_for_moto(process, f"http://127.0.0.1:{port}", seconds=1800)


# --- timed changes --------------------------------------------------------------------------------

def html_pages(site: Path) -> list[str]:
    return sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html"))


def site_files(site: Path) -> int:
    return sum(1 for p in site.rglob("*") if p.is_file())


def timed_change(counted: Counted, site: Path, bucket: str, change: Change, runs: int) -> dict:
    """Median of ``runs`` publishes of the change, each from the unchanged site's published state."""
    return repeated(runs, lambda: change.measure(lambda: content_publish(counted, site, bucket, 8)))


# --- the nights -------------------------------------------------------------------------------------

def night_date(number: int) -> str:
    import datetime as dt

    return (dt.date.fromisoformat(FIRST_NIGHT) + dt.timedelta(days=number)).isoformat()


def write_kept(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({**r, "terminated": True}) + "\n" for r in records), encoding="utf-8")
    return path


def render_archived(records: list[dict], work: Path, earlier: int, per_night: int) -> Path:
    """A site whose archive holds ``earlier`` nights (the last of them the newest), rendered by generator.render."""
    from generator.render import RenderSettings, render

    archive = work / "archive"
    for number in range(earlier - 1):  # already archived; render adds the newest one itself
        write_kept(archive / night_date(number) / "kept.jsonl", records[number * per_night:(number + 1) * per_night])
    last = earlier - 1
    kept = write_kept(work / f"kept-{last}.jsonl", records[last * per_night:(last + 1) * per_night])
    site = work / "site"
    render(kept, site, RenderSettings(), night=night_date(last), archive_dir=archive)
    return site


def render_next_night(records: list[dict], work: Path, earlier: int, per_night: int) -> dict:
    from generator.render import RenderSettings, render

    kept = write_kept(work / f"kept-{earlier}.jsonl", records[earlier * per_night:(earlier + 1) * per_night])
    return render(kept, work / "site", RenderSettings(), night=night_date(earlier), archive_dir=work / "archive")


def snapshot(site: Path, destination: Path) -> Path:
    """A hard-link copy (same inodes and mtimes), render's manifest with it."""
    shutil.copytree(site, destination, copy_function=os.link)
    shutil.copyfile(manifest_path(site), manifest_path(destination))
    return destination


def restore(saved: Path, site: Path) -> None:
    shutil.rmtree(site)
    snapshot(saved, site)


def timed_night(counted: Counted, site: Path, bucket: str, before: Path, after: Path, runs: int) -> dict:
    def measure() -> dict:
        restore(after, site)
        result = content_publish(counted, site, bucket, 8)
        restore(before, site)
        # Untimed: back to the earlier night's bucket, the new night's pages deleted (more than max_deletes).
        publish(site, f"s3://{bucket}/{PREFIX}", PublishSettings(force_deletes=True), client=counted.client)
        counted.take()
        return result

    return repeated(runs, measure)


# --- main ---------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalog", type=Path, default=SHARED_DATA / "netflix_titles_2021.csv")
    parser.add_argument("--small", type=int, default=8800, help="descriptions of the small site (~10k files)")
    parser.add_argument("--large", type=int, default=88000, help="descriptions of the large site (~100k files)")
    parser.add_argument("--per-night", type=int, default=300, help="descriptions per night (the 'nights' sites)")
    parser.add_argument("--repeat", type=int, default=3, help="timed publishes per measurement (median)")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--seed", action="append", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve, args.seed)
    if min(args.small, args.large, args.per_night, args.repeat) < 1 or args.large <= args.small:
        print("error: --small, --large, --per-night and --repeat must be >= 1, --large > --small "
              "(fix: e.g. --small 8800 --large 88000)", file=sys.stderr)
        raise SystemExit(2)

    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    base = descriptions(args.catalog)
    rng = random.Random(3)

    def synthetic(count: int, tag: str) -> list[dict]:
        """``count`` distinct descriptions: the catalog's, numbered past its end."""
        picked = []
        for n in range(count):
            record = dict(base[n % len(base)])
            record["text"] = f"{record['text']} ({tag} {n})" if n >= len(base) else record["text"]
            record["id"] = f"{tag}{n:07d}"
            picked.append(record)
        rng.shuffle(picked)
        return picked

    work = Path(tempfile.mkdtemp(prefix="bench-publish-scale-"))
    process = None
    rows: list[tuple[str, dict]] = []
    try:
        sites, files = {}, {}
        for name, count in (("small", args.small), ("large", args.large)):
            clock = time.perf_counter()
            (work / name).mkdir()
            sites[name] = render_site(synthetic(count, name[0]), work / name, "site")
            files[name] = site_files(sites[name])
            print(f"{name}: {files[name]} files from {count} descriptions, rendered in {time.perf_counter() - clock:.0f} s")
        nights_work = {1: work / "nights-1", 30: work / "nights-30"}
        night_records = synthetic(args.per_night * 31, "n")
        for earlier, where in nights_work.items():
            sites[f"nights-{earlier}"] = render_archived(night_records, where, earlier, args.per_night)
            files[f"nights-{earlier}"] = site_files(sites[f"nights-{earlier}"])
        print(f"nights: {files['nights-1']} files over 1 archived night, {files['nights-30']} over 30 "
              f"({args.per_night} descriptions a night)")

        clock = time.perf_counter()
        process, url = start_seeded_moto({f"bench-{name}": site for name, site in sites.items()})
        print(f"moto server at {url}, seeded with every site in {time.perf_counter() - clock:.0f} s")
        os.environ["AWS_ENDPOINT_URL"] = url
        counted = Counted(_s3_client(PublishSettings()))

        for name, site in sites.items():
            warm = content_publish(counted, site, f"bench-{name}", 8)  # last night's publish: the digest cache
            verify = publish(site, f"s3://bench-{name}/{PREFIX}", PublishSettings(verify=True), client=counted.client)
            counted.take()
            if warm["files"] or verify["uploaded"]:
                raise SystemExit(f"seeding of {name} is not what the publisher would have written: "
                                 f"{warm['files']} / {verify['uploaded']} uploads")
            rows.append((f"{name}: no change, no digest cache", warm))

        for name in ("small", "large"):
            pages = html_pages(sites[name])
            chosen = random.Random(1).sample(pages, round(files[name] * 0.01))
            one = Change(sites[name], chosen, work / f"{name}-1pct")
            rows.append((f"{name}: 1% of files ({len(chosen)} pages)", timed_change(
                counted, sites[name], f"bench-{name}", one, args.repeat)))
            fixed = Change(sites[name], random.Random(2).sample(pages, 100), work / f"{name}-100")
            rows.append((f"{name}: 100 pages", timed_change(counted, sites[name], f"bench-{name}", fixed, args.repeat)))

        for earlier, where in nights_work.items():
            site = sites[f"nights-{earlier}"]
            before = snapshot(site, where / "before")
            rendered = render_next_night(night_records, where, earlier, args.per_night)
            after = snapshot(site, where / "after")
            result = timed_night(counted, site, f"bench-nights-{earlier}", before, after, args.repeat)
            result["note"] = f"render wrote {rendered['written']}, removed {rendered['removed']}"
            rows.append((f"nights-{earlier}: a new night", result))
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)

    print()
    print(f"{'publish':<36} {'files up':>8} {'requests':>8} {'seconds':>8}  where the time goes")
    for name, r in rows:
        steps = ", ".join(f"{step} {seconds:.2f}" for step, seconds in r["timings"].items())
        runs = f"; runs {r['samples']}" if len(r.get("samples", [])) > 1 else ""
        note = f"; {r['note']}" if r.get("note") else ""
        print(f"{name:<36} {r['files']:>8} {r['requests']:>8} {r['seconds']:>8.2f}  {steps}{runs}{note}")

    result = dict(rows)
    print()
    growth = files["large"] / files["small"]
    for label, small, large in (("1% of files", result[next(n for n, _ in rows if n.startswith("small: 1%"))],
                                 result[next(n for n, _ in rows if n.startswith("large: 1%"))]),
                                ("100 pages", result["small: 100 pages"], result["large: 100 pages"])):
        ratio = large["seconds"] / small["seconds"]
        # 1% of a 10x site is 10x the files to upload: the uploads alone grow ~10x on any store.
        uploads = large["timings"]["upload"] / small["timings"]["upload"]
        rest = (large["seconds"] - large["timings"]["upload"]) / (small["seconds"] - small["timings"]["upload"])
        print(f"site x{growth:.1f}, {label} changed: {small['seconds']:.2f} s -> {large['seconds']:.2f} s, "
              f"{ratio:.2f}x (uploads {uploads:.1f}x, the rest {rest:.1f}x; "
              f"target <= 2x: {'met' if ratio <= 2 else 'MISSED'})")
    one, thirty = result["nights-1: a new night"], result["nights-30: a new night"]
    ratio = thirty["seconds"] / one["seconds"]
    print(f"a new night over 30 archived nights / over 1: {thirty['seconds']:.2f} s / {one['seconds']:.2f} s = "
          f"{ratio:.2f}x (target <= 1.5x: {'met' if ratio <= 1.5 else 'MISSED'})")


if __name__ == "__main__":
    main()
