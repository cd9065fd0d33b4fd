"""Publish: upload only what changed, in an order that never shows a broken page, and delete only our own files.

Targets:
  s3://bucket[/prefix]  AWS S3 or any S3-compatible store (``endpoint_url`` / ``AWS_ENDPOINT_URL``)
  file:///abs/dir       a local directory (the embedded default), same diffing, swapped in atomically

Modules, each importing only those above it:
  digests     the local digest cache beside the site: unchanged files are stat-ed, not re-read
  common      settings, targets, local files and their headers, plan types
  record      the ownership record (``<target>/.publish-state.json``): what this gallery published, as stored
  plan        phases and their order, which files go, the summary
  s3_store    S3 requests: client, listing, record, uploads, deletes, website, CloudFront
  s3_journal  the S3 plan from render's journal (generator.site_journal): what render changed goes
  s3_backend  the S3 publish;  local: the file:// publish
  stage       the stage function ``publish()``;  cli: its subcommand
"""

from .cli import add_cli
from .common import STATE_NAME, LocalFile, Plan, PublishSettings, Target, Upload, parse_target, scan_site
from .plan import assign_phases, summary_line
from .s3_store import list_remote, s3_client_for
from .stage import publish

# The S3 client the publisher builds (bench/bench_publish.py counts its requests).
_s3_client = s3_client_for

__all__ = ["STATE_NAME", "LocalFile", "Plan", "PublishSettings", "Target", "Upload", "add_cli", "assign_phases",
           "list_remote", "parse_target", "publish", "scan_site", "summary_line"]
