"""The fault and bad-input matrix: every CLI stage against hostile inputs ends cleanly and loses nothing.

One published night (``world``: a trained checkpoint, the night's data, a site with descriptions,
its file:// copy) is built once. Each case runs one command, as a user would, against a hostile
input or a fault, and asserts its exit code, one ``error:`` line without a traceback, and that
the world (site, published copy, checkpoints, models, archive, the night's data) is byte-identical
afterwards. Faults that need a mount (a full disk, a read-only folder) skip where mount fails.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

from conftest import SAMPLE_CATALOG, assert_clean_error, run_cli
from faults import read_only, small_disk, tree_hash

NIGHT = "2026-11-20"
GOOD = [  # hand-written descriptions the rules keep (the test profile's model writes none)
    "A retired lighthouse keeper teams up with a curious teenager to solve a string of quiet thefts along the coast.",
    "Two estranged sisters inherit a failing vineyard and must bring in one last harvest before the bank arrives.",
    "An anxious chef enters a televised baking contest to save the family diner from a greedy developer.",
    "A stubborn detective in a snowbound mountain town hunts for a missing mayor while a blizzard cuts every road.",
]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A published night: `run` (train, generate, curate) then a site with descriptions, published to file://."""
    base = tmp_path_factory.mktemp("world")
    work, public = base / "work", base / "public"
    result = run_cli("run", "--profile", "test", "--catalog", str(SAMPLE_CATALOG), "--workdir", str(work),
                     "--target", f"file://{public}", "--samples", "8", "--steps", "10", "--night", NIGHT)
    assert result.returncode == 0, result.stderr[-3000:]
    kept = base / "good-kept.jsonl"
    kept.write_text("".join(json.dumps({"text": t, "terminated": True}) + "\n" for t in GOOD))
    for args in (("render", "--samples", str(kept), "--out", str(work / "site"), "--night", NIGHT,
                  "--archive", str(work / "archive")),
                 ("publish", "--site", str(work / "site"), "--target", f"file://{public}")):
        result = run_cli(*args)
        assert result.returncode == 0, result.stderr[-3000:]
    # The last good checkpoint is the released one and its live pointer (the working run may change:
    # a killed training resumes from it).
    protected = [work / "site", public, work / "checkpoints" / "releases", work / "checkpoints" / "nightly.live.json",
                 work / "models", work / "archive", work / "nights" / NIGHT]
    return {"base": base, "work": work, "public": public, "kept": kept, "protected": protected,
            "before": tree_hash(*protected)}


def jsonl(*lines: bytes | str) -> bytes:
    return b"".join((line.encode() if isinstance(line, str) else line) + b"\n" for line in lines)


OK_LINE = '{"text": "A quiet baker in a seaside town finds a map that leads to a forgotten shipwreck.", "terminated": true}'

# name -> (file bytes, expected exit code of curate and render, a word of the error)
SAMPLES = {
    "invalid-utf8": (jsonl(OK_LINE, b'{"text": "caf\xe9 \xff"}'), 2, ":2: not UTF-8"),
    "lone-surrogate": (jsonl('{"text": "a \\ud800 b"}'), 2, "lone surrogate"),
    "low-surrogate": (jsonl(OK_LINE, '{"text": "x", "genre": "\\udfff"}'), 2, "lone surrogate"),
    "deep-nesting": (b"[" * 100_000 + b"]" * 100_000 + b"\n", 2, "nested too deeply"),
    "deep-object": (b'{"a":' * 60_000 + b"1" + b"}" * 60_000 + b"\n", 2, "nested too deeply"),
    "malformed": (jsonl(OK_LINE, "{not json"), 2, ":2: malformed JSON"),
    "truncated": (jsonl('{"text": "cut off'), 2, "malformed JSON"),
    "array-line": (jsonl('["text"]'), 2, "JSON object"),
    "null-line": (jsonl("null"), 2, "JSON object"),
    "number-line": (jsonl("42"), 2, "JSON object"),
    "text-number": (jsonl('{"text": 5}'), 2, 'string "text"'),
    "text-null": (jsonl('{"text": null}'), 2, 'string "text"'),
    "no-text": (jsonl('{"txt": "x"}'), 2, 'string "text"'),
    "terminated-string": (jsonl('{"text": "x", "terminated": "false"}'), 2, '"terminated" must be true or false'),
    "terminated-int": (jsonl('{"text": "x", "terminated": 0}'), 2, '"terminated"'),
    "type-number": (jsonl('{"text": "x", "type": 5}'), 2, '"type"'),
    "genre-list": (jsonl('{"text": "x", "genre": ["Dramas"]}'), 2, '"genre"'),
    "index-string": (jsonl('{"text": "x", "index": "3"}'), 2, '"index"'),
    "index-bool": (jsonl('{"text": "x", "index": true}'), 2, '"index"'),
    "logprob-string": (jsonl('{"text": "x", "logprob": "high"}'), 2, '"logprob"'),
    "logprob-nan": (jsonl('{"text": "x", "logprob": NaN}'), 2, "finite"),
    "logprob-infinity": (jsonl('{"text": "x", "logprob": -Infinity}'), 2, "finite"),
    "logprob-bool": (jsonl('{"text": "x", "logprob": false}'), 2, '"logprob"'),
    "bad-line-late": (jsonl(*[OK_LINE] * 500, '{"text": 1}'), 2, ":501:"),
    "bom": (b"\xef\xbb\xbf" + jsonl(OK_LINE), 0, None),
    "crlf": (OK_LINE.encode() + b"\r\n", 0, None),
    "surrogate-pair": (jsonl('{"text": "A baker \\ud83d\\ude00 opens a shop by the sea and meets a stranger."}'), 0, None),
    "null-char": (jsonl('{"text": "A baker\\u0000 opens a shop by the sea and meets a kind stranger there."}'), 0, None),
    "huge-line": (jsonl(json.dumps({"text": "word " * 400_000})), 0, None),
    "blank-lines": (b"\n\n" + jsonl(OK_LINE) + b"\n  \n", 0, None),
}


@pytest.mark.parametrize("stage", ["curate", "render"])
@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_hostile_samples(world, tmp_path, stage, name):
    data, code, needle = SAMPLES[name]
    samples = tmp_path / "s.jsonl"
    samples.write_bytes(data)
    if stage == "curate":
        # The test profile: no reader (the suite never loads the 135M model; tests/test_curate_reader.py reads).
        args = ("curate", "--profile", "test", "--samples", str(samples), "--catalog",
                str(world["work"] / "nights" / NIGHT / "ingest"), "--out", str(tmp_path / "kept.jsonl"))
    else:  # a failing render aims at the published night's site: it must stay as it was
        out = world["work"] / "site" if code else tmp_path / "site"
        args = ("render", "--samples", str(samples), "--out", str(out))
    check(world, run_cli(*args), code, needle)


def check(world, result, code: int, *needles: str | None) -> None:
    """The command's exit code and error contract, and the world byte-identical afterwards."""
    if code:
        assert result.returncode == code, result.stderr[-2000:]
        assert_clean_error(result, *(n for n in needles if n))
    else:
        assert result.returncode == 0, result.stderr[-2000:]
        assert "Traceback" not in result.stderr
    assert tree_hash(*world["protected"]) == world["before"], "the published night changed"


# --- render --report ---------------------------------------------------------------------------------

REPORTS = {
    "night-number": (b'{"night": 20261125}', "bad night"),
    "night-basic-format": (b'{"night": "20261125"}', "bad night"),
    "night-week-date": (b'{"night": "2026-W48-3"}', "bad night"),
    "night-list": (b'{"night": ["2026-11-25"]}', "bad night"),
    "array": (b"[1, 2]", "JSON object"),
    "invalid-json": (b"{night", "not valid JSON"),
    "invalid-utf8": (b'{"night": "\xff"}', "not valid JSON"),
    "deep": (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
    "missing": (None, "report file not found"),
}


@pytest.mark.parametrize("name", sorted(REPORTS))
def test_hostile_report(world, tmp_path, name):
    data, needle = REPORTS[name]
    report = tmp_path / "report.json"
    if data is not None:
        report.write_bytes(data)
    result = run_cli("render", "--samples", str(world["kept"]), "--out", str(world["work"] / "site"),
                     "--report", str(report))
    check(world, result, 2, needle)


# --- the catalog CSV ---------------------------------------------------------------------------------

def catalog_lines() -> list[str]:
    return SAMPLE_CATALOG.read_text(encoding="utf-8").splitlines(keepends=True)


def unclosed(line_index: int) -> str:
    """The catalog with the closing quote of the first quoted description from ``line_index`` on removed."""
    lines = catalog_lines()
    while not lines[line_index].endswith('"\n'):
        line_index += 1
    lines[line_index] = lines[line_index].rstrip("\n").rstrip('"') + "\n"
    return "".join(lines)


CATALOGS = {
    "unclosed-quote-early": (unclosed(5), "line 6"),
    "unclosed-quote-middle": (unclosed(800), "swallow"),
    "unclosed-quote-in-cast": ("".join(catalog_lines()[:3] + [catalog_lines()[3].replace(', ', '", "', 1)]
                                       + catalog_lines()[4:]), "line 4"),
    "ragged-row": ("".join(catalog_lines()[:10] + ["s999,Movie,T,,,,,,,,Dramas,A plain story,extra,cells\n"]
                           + catalog_lines()[10:]), "line 11"),
    "duplicate-description-header": ("description,title,description\nA b c d e,x,f g h i j\n", "'description'"),
    "duplicate-other-header": ("title,Title,description\nx,y,A long enough description of a film.\n", "'title'"),
    "no-description-column": ("show_id,title\ns1,Foo\n", "no 'description' column"),
    "empty": ("", "empty"),
    "header-only": ("show_id,description\n", "no usable descriptions"),
    "latin-1": ("description\nCafé au lait à Paris, où tout commence ici.\n".encode("latin-1"), "not UTF-8"),
    "utf-16": ("description\nA long description of a film here.\n".encode("utf-16"), "not UTF-8"),
    "binary": (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "not UTF-8"),
    "only-short-descriptions": ("description\nA film.\nTwo words\n", "no usable"),
}


@pytest.mark.parametrize("name", sorted(CATALOGS))
def test_hostile_catalog(world, tmp_path, name):
    data, needle = CATALOGS[name]
    catalog = tmp_path / "c.csv"
    catalog.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    out = tmp_path / "ingest"
    check(world, run_cli("ingest", "--catalog", str(catalog), "--out", str(out)), 2, needle)
    assert not out.exists(), "a refused catalog writes nothing"


@pytest.mark.parametrize("name", ["missing", "directory", "ftp", "bad-s3", "http-bad-port", "file-url-missing",
                                  "http-bad-ipv6"])
def test_unreadable_catalog_sources(world, tmp_path, name):
    source, needle = {
        "missing": (str(tmp_path / "nope.csv"), "catalog not found"),
        "directory": (str(tmp_path), "catalog not found"),
        "ftp": ("ftp://user:hunter2@example.invalid/c.csv", "unsupported catalog source"),
        "bad-s3": ("s3://", "bad catalog URI"),
        "http-bad-port": ("http://user:hunter2@127.0.0.1:99999/c.csv?X-Amz-Signature=abc", "bad catalog URL"),
        "file-url-missing": (f"file://{tmp_path}/nope.csv", "catalog not found"),
        "http-bad-ipv6": ("http://user:hunter2@[::1/c.csv", "bad catalog URL"),
    }[name]
    result = run_cli("ingest", "--catalog", source, "--out", str(tmp_path / "ingest"))
    check(world, result, 2, needle)
    assert "hunter2" not in result.stderr and "X-Amz-Signature" not in result.stderr


# --- where outputs go: a file, a folder, under a file, read-only, a full disk --------------------------

def out_case(kind: str, tmp_path: Path, stack: contextlib.ExitStack, name: str) -> Path:
    if kind == "dir":
        (tmp_path / name).mkdir()
        return tmp_path / name
    if kind == "file":
        (tmp_path / name).write_text("x")
        return tmp_path / name
    if kind == "under-file":
        (tmp_path / "afile").write_text("x")
        return tmp_path / "afile" / name
    if kind == "read-only":
        return stack.enter_context(read_only(tmp_path / "ro")) / name
    if kind == "full-disk":
        return stack.enter_context(small_disk(tmp_path / "full", "16k")) / name
    raise AssertionError(kind)


STAGE_OUTPUTS = {  # stage -> (kinds refused, argv builder, word of the error per kind)
    "ingest": (("file", "under-file", "read-only", "full-disk"),
               lambda w, out: ("ingest", "--catalog", str(SAMPLE_CATALOG), "--out", str(out))),
    "curate": (("dir", "under-file", "read-only"),
               lambda w, out: ("curate", "--samples", str(w["kept"]), "--catalog", str(SAMPLE_CATALOG),
                               "--out", str(out))),
    "generate": (("dir", "under-file", "read-only"),
                 lambda w, out: ("generate", "--profile", "test", "--checkpoint-dir",
                                 str(w["work"] / "checkpoints"), "--samples", "2", "--out", str(out))),
    "render": (("file", "under-file", "read-only", "full-disk"),
               lambda w, out: ("render", "--samples", str(w["kept"]), "--out", str(out))),
    "train": (("under-file", "read-only"),
              lambda w, out: ("train", "--profile", "test", "--ingest", str(w["work"] / "nights" / NIGHT / "ingest"),
                              "--checkpoint-dir", str(out), "--models-dir", str(w["work"] / "models"))),
    "base-model": (("under-file", "read-only"),
                   lambda w, out: ("base-model", "--profile", "test", "--models-dir", str(out), "--corpus",
                                   str(w["work"] / "nights" / NIGHT / "ingest" / "train.txt"))),
    "publish": (("file", "under-file", "read-only"),
                lambda w, out: ("publish", "--site", str(w["work"] / "site"), "--target", f"file://{out}")),
}
OUTPUT_CASES = [(stage, kind) for stage, (kinds, _) in STAGE_OUTPUTS.items() for kind in kinds]


@pytest.mark.parametrize("stage,kind", OUTPUT_CASES, ids=[f"{s}-{k}" for s, k in OUTPUT_CASES])
def test_unwritable_outputs(world, tmp_path, stage, kind):
    with contextlib.ExitStack() as stack:
        out = out_case(kind, tmp_path, stack, "out.jsonl" if stage in ("curate", "generate") else "out")
        result = run_cli(*STAGE_OUTPUTS[stage][1](world, out), timeout=300)
        check(world, result, 2)
        assert ".partial" not in " ".join(p.name for p in tmp_path.rglob("*")), "no half-written output left"


# --- the night's id, the configuration ---------------------------------------------------------------

@pytest.mark.parametrize("night", ["20261125", "2026-W48-3", "2026-13-01", "2026-02-30", "2026-11-25T00:00",
                                   " 2026-11-25", "2026-11-25\n", "../../etc", "2026-1-5"])
def test_run_refuses_a_bad_night_before_any_work(world, tmp_path, night):
    work = tmp_path / "fresh"
    result = run_cli("run", "--profile", "test", "--catalog", str(SAMPLE_CATALOG), "--workdir", str(work),
                     "--target", f"file://{tmp_path / 'pub'}", "--night", night)
    check(world, result, 2, "bad night")
    assert not work.exists() and not (tmp_path / "pub").exists(), "nothing is done for a bad night"


CONFIGS = {
    "unknown-profile": ({}, ["--profile", "enormous"], "unknown profile"),
    "bad-toml": ({"file": b"[train\nsteps = "}, [], "not valid TOML"),
    "toml-not-utf8": ({"file": b"[train]\nsteps = \"\xff\"\n"}, [], "not valid TOML"),
    "unknown-section": ({"file": b"[nope]\nx = 1\n"}, [], "unknown config section"),
    "unknown-key": ({"file": b"[train]\nstepz = 1\n"}, [], "unknown setting"),
    "wrong-type-env": ({"env": {"GENERATOR_TRAIN__STEPS": "many"}}, [], "must be int"),
    "negative-min-kept": ({"env": {"GENERATOR_CURATE__MIN_KEPT": "-1"}}, [], "min_kept"),
    "config-is-dir": ({"dir": True}, [], "config file"),
    "missing-config": ({"missing": True}, [], "config file not found"),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_bad_configuration(world, tmp_path, name):
    spec, extra, needle = CONFIGS[name]
    args = ["config", *extra]
    if "file" in spec:
        (tmp_path / "c.toml").write_bytes(spec["file"])
        args += ["--config", str(tmp_path / "c.toml")]
    if spec.get("dir"):
        args += ["--config", str(tmp_path)]
    if spec.get("missing"):
        args += ["--config", str(tmp_path / "nope.toml")]
    check(world, run_cli(*args, env=spec.get("env")), 2, needle)


def test_config_masks_url_secrets(world):
    target = "s3://bucket/site?X-Amz-Signature=deadbeef&X-Amz-Security-Token=tok3n"
    result = run_cli("config", env={"GENERATOR_PUBLISH__TARGET": target,
                                    "GENERATOR_PUBLISH__ENDPOINT_URL": "http://user:hunter2@127.0.0.1:9000"})
    check(world, result, 0)
    for secret in ("deadbeef", "tok3n", "hunter2"):
        assert secret not in result.stdout + result.stderr


# --- publish -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["missing-site", "ftp-target", "relative-file-target", "root-target",
                                  "overlapping-target", "bucket-less-s3", "empty-site"])
def test_publish_refuses(world, tmp_path, name):
    site, target = world["work"] / "site", f"file://{tmp_path / 'pub'}"
    if name == "missing-site":
        site = tmp_path / "nosite"
    elif name == "ftp-target":
        target = "ftp://example.invalid/x"
    elif name == "relative-file-target":
        target = "file://relative/dir"
    elif name == "root-target":
        target = "file:///"
    elif name == "overlapping-target":
        target = f"file://{world['work'] / 'site' / 'sub'}"
    elif name == "bucket-less-s3":
        target = "s3:///prefix"
    elif name == "empty-site":
        site = tmp_path / "empty"
        site.mkdir()
    check(world, run_cli("publish", "--site", str(site), "--target", target), 2)


# --- publish: what the publish package guarantees, kept true ------------------------------------------

def copy_site(world, tmp_path: Path) -> Path:
    import shutil

    site = tmp_path / "site"
    shutil.copytree(world["work"] / "site", site)
    shutil.copy(world["work"] / "site.manifest.json", tmp_path / "site.manifest.json")
    return site


@pytest.mark.parametrize("name", ["incomplete-render", "no-render-manifest", "unreadable-render-manifest",
                                  "foreign-target", "target-is-file", "target-under-file"])
def test_publish_protects_the_published_site(world, tmp_path, name):
    site, target = copy_site(world, tmp_path), tmp_path / "pub"
    manifest = tmp_path / "site.manifest.json"
    needle = None
    if name == "incomplete-render":
        data = json.loads(manifest.read_text())
        manifest.write_text(json.dumps({**data, "complete": False}))
        needle = "incomplete"
    elif name == "no-render-manifest":
        manifest.unlink()
        needle = "render"
    elif name == "unreadable-render-manifest":
        manifest.write_bytes(b"\xff{")
        needle = "render manifest"
    elif name == "foreign-target":
        target.mkdir()
        (target / "precious.txt").write_text("not the gallery's")
        needle = "did not"
    elif name == "target-is-file":
        target.write_text("a file")
    elif name == "target-under-file":
        (tmp_path / "afile").write_text("x")
        target = tmp_path / "afile" / "pub"
    before = tree_hash(target)
    check(world, run_cli("publish", "--site", str(site), "--target", f"file://{target}"), 2, needle)
    assert tree_hash(target) == before, "a refused publish touches nothing at the target"


def test_publish_dry_run_into_a_closed_pipe_is_quiet(world, tmp_path):
    import subprocess
    import sys

    # A new target: the plan lists every file of the site, far more than `head` reads.
    result = subprocess.run(f"{sys.executable} -m generator publish --site {world['work'] / 'site'} "
                            f"--target file://{tmp_path / 'new'} --dry-run | head -c 10",
                            shell=True, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr
    assert len(result.stdout) == 10 and not (tmp_path / "new").exists()
    assert tree_hash(*world["protected"]) == world["before"]
