"""Render safety: all-or-nothing renders, the completeness manifest, base_url validation, the CSP."""

from __future__ import annotations

import errno
import json
import os
import re

import pytest

from conftest import assert_clean_error, run_cli
from generator.artifacts import manifest_path
from generator.errors import UserError
from generator.render import CONTENT_SECURITY_POLICY, RenderSettings, assert_render_complete, render
from generator.render import stage as stage_module
from generator.render import writer as writer_module
from test_render import NIGHT, REPORT, catalog_samples, html_files, parse, tree_bytes, write_samples


def failing_after(monkeypatch, files: int) -> list[str]:
    """Make SiteWriter.write raise ENOSPC once ``files`` files were written; returns what was written."""
    real_write = writer_module.SiteWriter.write
    written: list[str] = []

    def write(self, rel, data, indexable=False):
        if len(written) == files:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), f"{self.root}/{rel}")
        written.append(rel)
        return real_write(self, rel, data, indexable)

    monkeypatch.setattr(writer_module.SiteWriter, "write", write)
    return written


def leftovers(parent) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


# --- all or nothing -----------------------------------------------------------------------------------

@pytest.mark.parametrize("files", [0, 40])
def test_a_render_failing_partway_leaves_the_previous_site_byte_identical(tmp_path, monkeypatch, files):
    records = catalog_samples(30)
    samples = write_samples(tmp_path / "kept.jsonl", records)
    site = tmp_path / "site"
    render(samples, site, RenderSettings(page_size=10), night=NIGHT, report=REPORT)
    before, manifest_before = tree_bytes(site), manifest_path(site).read_bytes()
    write_samples(samples, records[:-3] + catalog_samples(40)[30:])  # tonight differs from last night

    written = failing_after(monkeypatch, files)
    with pytest.raises(UserError) as caught:
        render(samples, site, RenderSettings(page_size=10), night="2026-11-26", report=REPORT)
    message = str(caught.value)
    assert "No space left on device" in message and "fix: free space" in message and "\n" not in message
    assert len(written) == files
    assert tree_bytes(site) == before
    assert manifest_path(site).read_bytes() == manifest_before
    assert leftovers(tmp_path) == [], "the staging folder must be removed"
    assert assert_render_complete(site)["night"] == NIGHT

    monkeypatch.undo()  # the disk has room again: the same render now goes through
    manifest = render(samples, site, RenderSettings(page_size=10), night="2026-11-26", report=REPORT)
    assert manifest["complete"] is True and manifest["night"] == "2026-11-26"
    assert tree_bytes(site) != before and leftovers(tmp_path) == []


def test_a_first_render_that_fails_leaves_no_site_and_no_staging(tmp_path, monkeypatch):
    samples = write_samples(tmp_path / "kept.jsonl", catalog_samples(10))
    failing_after(monkeypatch, 5)
    with pytest.raises(UserError, match="No space left on device"):
        render(samples, tmp_path / "site", RenderSettings(), night=NIGHT)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.jsonl"]
    with pytest.raises(UserError, match=r"site .*site has no render manifest .*: its render did not complete \(fix: render the site again"):
        assert_render_complete(tmp_path / "site")


def test_a_crash_between_swap_and_manifest_leaves_the_site_marked_incomplete(tmp_path, monkeypatch):
    records = catalog_samples(12)
    samples = write_samples(tmp_path / "kept.jsonl", records)
    site = tmp_path / "site"
    render(samples, site, RenderSettings(), night=NIGHT)
    assert assert_render_complete(site)["complete"] is True
    real_write_manifest = stage_module.write_manifest

    def write_manifest(output, stage, **fields):
        if fields.get("complete") is True:
            raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT), str(manifest_path(output)))
        return real_write_manifest(output, stage, **fields)

    monkeypatch.setattr(stage_module, "write_manifest", write_manifest)
    write_samples(samples, records[:-1])
    with pytest.raises(UserError, match="could not write its manifest"):
        render(samples, site, RenderSettings(), night=NIGHT)
    assert json.loads(manifest_path(site).read_text())["complete"] is False
    with pytest.raises(UserError, match="is incomplete: site.manifest.json says its render did not complete"):
        assert_render_complete(site)
    monkeypatch.undo()
    assert render(samples, site, RenderSettings(), night=NIGHT)["complete"] is True  # render accepts its own incomplete site
    assert assert_render_complete(site)["descriptions"] == 11


def test_an_unchanged_render_keeps_the_site_folder_and_leaves_no_staging(tmp_path):
    samples = write_samples(tmp_path / "kept.jsonl", catalog_samples(12))
    site = tmp_path / "site"
    render(samples, site, RenderSettings(), night=NIGHT)
    inode = site.stat().st_ino
    again = render(samples, site, RenderSettings(), night=NIGHT)
    assert again["written"] == 0 and site.stat().st_ino == inode and leftovers(tmp_path) == []


def test_assert_render_complete_refuses_foreign_and_missing_folders(tmp_path):
    (tmp_path / "folder").mkdir()
    manifest_path(tmp_path / "folder").write_text(json.dumps({"stage": "curate", "complete": True}))
    for site in (tmp_path / "folder", tmp_path / "missing"):
        with pytest.raises(UserError, match="is not a complete render|has no render manifest"):
            assert_render_complete(site)


def test_cli_reports_an_unwritable_output_in_one_line(tmp_path):
    samples = write_samples(tmp_path / "kept.jsonl", catalog_samples(3))
    (tmp_path / "afile").write_text("not a folder")
    result = run_cli("render", "--samples", str(samples), "--out", str(tmp_path / "afile" / "site"))
    assert_clean_error(result, "render into", "not a directory", "fix:")


# --- base_url ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["https://example.org/g\nDisallow: /", "https://example.org/a b", "https://x.org/\t",
                                 "https://x.org/\x00", "https://x.org/\u202e", "ftp://example.org", "example.org",
                                 "//example.org/g", "javascript:alert(1)", "https://", "https://x.org:99999/",
                                 "https://x.org/g?x=1", "https://x.org/g#top", "https://user@x.org/"])
def test_base_url_must_be_one_absolute_http_url(url):
    with pytest.raises(UserError, match=r"render\.base_url") as caught:
        RenderSettings(base_url=url).validate()
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("url", ["https://example.org/gallery", "http://127.0.0.1:8000", "https://cdn.example.org/a/b/"])
def test_base_url_accepts_absolute_http_urls(url):
    RenderSettings(base_url=url).validate()


def test_a_newline_in_base_url_cannot_reach_robots_txt(tmp_path):
    samples = write_samples(tmp_path / "kept.jsonl", catalog_samples(3))
    result = run_cli("render", "--samples", str(samples), "--out", str(tmp_path / "site"),
                     "--base-url", "https://example.org\nDisallow: /")
    assert_clean_error(result, "render.base_url", "whitespace")
    assert not (tmp_path / "site").exists()


# --- content security policy ------------------------------------------------------------------------

def test_every_page_declares_the_policy_and_has_nothing_inline(tmp_path):
    samples = write_samples(tmp_path / "kept.jsonl", catalog_samples(20))
    site = tmp_path / "site"
    render(samples, site, RenderSettings(page_size=5, base_url="https://example.org"), night=NIGHT, report=REPORT)
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY and "script-src 'self'" in CONTENT_SECURITY_POLICY
    pages = html_files(site)
    assert len(pages) > 40
    for page in pages:
        parsed = parse(page)
        assert parsed.meta.get("Content-Security-Policy") == CONTENT_SECURITY_POLICY, page
        assert parsed.scripts_inline == 0, page
        tags = [tag for tag, _ in parsed.tags]
        assert "style" not in tags, page
        attributes = [name for _, attrs in parsed.tags for name in attrs]
        assert "style" not in attributes and not [a for a in attributes if a.startswith("on")], page
        # The policy comes first in <head>, before anything it governs.
        policy_at = next(i for i, (tag, attrs) in enumerate(parsed.tags)
                         if tag == "meta" and attrs.get("http-equiv") == "Content-Security-Policy")
        assert policy_at < min(i for i, tag in enumerate(tags) if tag in ("link", "script", "base")), page
    about = (site / "about" / "index.html").read_text()
    assert "<svg" in about and not re.search(r"<svg[^>]*\sstyle=", about)
