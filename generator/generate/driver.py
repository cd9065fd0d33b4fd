"""The generate stage's fast backend: continuous batching, samples written in index order, resumable.

:func:`generate_fast` drives :class:`generator.generate.sampler.ContinuousSampler`
and owns what a run of the stage needs around it: each sample's random stream
(``sample_seed``), the ``<out>.partial`` file with its fingerprint, resuming an
interrupted run from its last whole batch, the progress bar and a log line per
tenth of the run.

Start-up is paid once per process: the sampler (its graph, session, weights and
XLA-compiled loop) is kept after a run and reused by the next run with the same
checkpoint and shape settings (:func:`sampler_key`), so every round of a night
in one process shares one compiled sampler. Each run's manifest says what its
start-up cost (``startup``: import, graph, compile, first sample; ``reused``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Callable, Iterable

from ..checkpoints import read_hparams, run_encoder
from ..textformat import parse_sample
from .rows import Row
from .sampler import ContinuousSampler

log = logging.getLogger(__name__)


def plan_batches(settings) -> list[tuple[int, int]]:
    """[(first index, rows), ...]: the samples in runs of ``batch_size``, the units written and resumed."""
    return [(first, min(settings.batch_size, settings.samples - first))
            for first in range(0, settings.samples, settings.batch_size)]


def sample_seed(seed: int, index: int) -> list[int]:
    """The random stream of sample ``index`` (``numpy.random.default_rng`` entropy)."""
    return [seed & 0xFFFFFFFFFFFFFFFF, index]


def partial_paths(out_path: str | Path) -> tuple[Path, Path]:
    """Where a run in progress writes: ``<out>.partial`` and its fingerprint ``<out>.partial.json``."""
    out_path = Path(out_path)
    return out_path.with_name(out_path.name + ".partial"), out_path.with_name(out_path.name + ".partial.json")


def resume_fingerprint(run_dir: str | Path, settings, length: int,
                       checkpoint: tuple[str, str | None] | None = None) -> dict:
    """What produced a partial output; only an identical fingerprint may be resumed.

    ``checkpoint``: (name, sha256) of the weights sampled from; by default the run's latest
    TensorFlow checkpoint and the digest of its index file (a GPT-2 run).
    """
    run_dir = Path(run_dir)
    name, digest = checkpoint or tensorflow_checkpoint(run_dir)
    fields = dataclasses.asdict(settings)
    for key in ("progress", "resume", "threads"):  # they do not change the samples
        fields.pop(key, None)
    return {"run_dir": str(run_dir.resolve()), "checkpoint": name, "checkpoint_index_sha256": digest,
            "length": length, "settings": fields}


def tensorflow_checkpoint(run_dir: Path) -> tuple[str, str | None]:
    """A GPT-2 run's latest checkpoint: its name and the sha256 of its index file."""
    from ..tf_runtime import import_tf

    checkpoint = import_tf().train.latest_checkpoint(str(run_dir)) or ""
    index_file = Path(checkpoint + ".index")
    return Path(checkpoint).name, hashlib.sha256(index_file.read_bytes()).hexdigest() if index_file.is_file() else None


def _resumable_lines(partial: Path, boundaries: set[int]) -> list[str]:
    """The lines of a partial output up to its last whole batch (a torn tail is dropped)."""
    lines = []
    with partial.open("r", encoding="utf-8") as handle:
        for line in handle:
            try:
                record = json.loads(line) if line.endswith("\n") else None
            except json.JSONDecodeError:
                record = None
            if not isinstance(record, dict) or record.get("index") != len(lines):
                break
            lines.append(line)
    while len(lines) not in boundaries:
        lines.pop()
    return lines


def _progress_bar(settings, total: int, initial: int):
    from tqdm import tqdm

    shown = getattr(settings, "progress", True) and sys.stderr.isatty()
    return tqdm(total=total, initial=initial, unit="sample", desc="generate", file=sys.stderr,
                disable=not shown, dynamic_ncols=True, smoothing=0.1)


_SAMPLERS: dict[tuple, ContinuousSampler] = {}  # sampler_key -> the process's compiled sampler
KEPT_SAMPLERS = 2  # a night uses one; a second covers an alternating caller without rebuilding


def sampler_key(fingerprint: dict, contexts: list[list[int]], allowed, threads: int) -> tuple:
    """What a compiled sampler is built from: checkpoint, prompts, cap, batch, filtering, threads, mask."""
    fields = fingerprint["settings"]
    mask = None if allowed is None else hashlib.sha256(allowed.tobytes()).hexdigest()
    return (fingerprint["run_dir"], fingerprint["checkpoint"], fingerprint["checkpoint_index_sha256"],
            tuple(map(tuple, contexts)), fingerprint["length"], fields["batch_size"], fields["temperature"],
            fields["top_k"], fields["top_p"], threads, mask)


def close_samplers() -> None:
    """Release the process's cached samplers (their sessions and memory)."""
    while _SAMPLERS:
        _SAMPLERS.pop(next(iter(_SAMPLERS))).close()


def _sampler(key: tuple, build, startup: dict) -> ContinuousSampler:
    """The cached sampler for ``key``, or a new one built, compiled and cached."""
    if key in _SAMPLERS:
        startup["reused"] = True
        return _SAMPLERS[key]
    from ..tf_runtime import stable_function_names

    started = time.monotonic()
    try:  # the same names, hence the same compiled program and cache entry, in every process
        with stable_function_names(repr(key[3:])):  # the shape and settings, not which checkpoint
            sampler = build()
    except Exception as error:  # tf.errors.InvalidArgumentError, without importing TensorFlow here
        if "duplicate function" not in str(error):
            raise
        # This process built a program with those names and a different definition: fresh names.
        log.info("compiled sampler named apart from an earlier one of this process (a cache miss)")
        sampler = build()
    graph_built = time.monotonic()
    list(sampler.generate([]))  # an empty queue: XLA compiles the loop (or loads it from the persistent cache)
    startup.update(reused=False, graph_seconds=round(graph_built - started, 2),
                   compile_seconds=round(time.monotonic() - graph_built, 2))
    while len(_SAMPLERS) >= KEPT_SAMPLERS:
        _SAMPLERS.pop(next(iter(_SAMPLERS))).close()
    _SAMPLERS[key] = sampler
    return sampler


def _log_marks(settings, resumed: int) -> set[int]:
    """The sample counts at which a progress line is logged: about each tenth of the run, on batch ends."""
    step = max(settings.batch_size, -(-(settings.samples - resumed) // 10))
    step = -(-step // settings.batch_size) * settings.batch_size
    return set(range(resumed + step, settings.samples, step)) | {settings.samples}


def generate_fast(run_dir: str | Path, out_path: str | Path, settings, length: int, prefixes: list[str],
                  seen_tokens: list[int] | None = None, prompts: list[str] | None = None,
                  titled: bool = False) -> dict:
    """Write ``settings.samples`` samples to ``out_path`` with the continuous-batching sampler.

    ``prefixes``: each sample's prefix, by index; ``seen_tokens``: the token ids the training
    text contained (the others are never sampled), or None to allow every token;
    ``prompts``: every prefix the caller's runs may use (the sampler is built for all of
    them, so the next run reuses it), or None for this run's prefixes only; ``titled``: the
    run was trained on titled text, so each record's ``title`` is parsed out (``textformat.parse_sample``).
    ``batch_size`` slots decode side by side, each taking the next sample as soon
    as its current one ends (:mod:`generator.generate.sampler`); :func:`write_samples`
    writes them in index order and resumes an interrupted run. Returns extra fields for the manifest.
    """
    startup = import_tensorflow()
    fingerprint = resume_fingerprint(run_dir, settings, length)

    def start(resumed: int):
        distinct = sorted(set(prompts or []) | set(prefixes[resumed:])) or [prefixes[0]]
        prompt_of = {prefix: position for position, prefix in enumerate(distinct)}
        encoder = run_encoder(run_dir)
        contexts = [encoder.encode(prefix) for prefix in distinct]
        n_vocab = read_hparams(run_dir)["n_vocab"]
        allowed = allowed_tokens(seen_tokens, n_vocab) if seen_tokens else None
        sampler = _sampler(sampler_key(fingerprint, contexts, allowed, settings.threads), lambda: ContinuousSampler(
            run_dir, contexts, length, batch_size=settings.batch_size, temperature=settings.temperature,
            top_k=settings.top_k, top_p=settings.top_p, threads=settings.threads, allowed=allowed), startup)
        jobs = ((index, prompt_of[prefixes[index]], sample_seed(settings.seed, index))
                for index in range(resumed, settings.samples))

        def record(index: int, row: Row) -> dict:
            prefix = prefixes[index]
            return parse_sample(encoder.decode(contexts[prompt_of[prefix]] + row.tokens), prefix, titled)

        return sampler, sampler.generate(jobs), record

    stats = write_samples(out_path, settings, fingerprint, start, startup)
    return {**stats, "conditions_used": len(set(prefixes[stats["resumed_from"]:]))}


def import_tensorflow() -> dict:
    """Import TensorFlow (timed: ~0 once loaded); the start-up record a run's manifest carries."""
    from ..tf_runtime import import_tf

    started = time.monotonic()
    import_tf()
    return {"import_seconds": round(time.monotonic() - started, 2)}


def _resumed_lines(partial: Path, meta: Path, fingerprint: dict, settings, boundaries: set[int]) -> list[str]:
    """The whole batches of an interrupted run with the same fingerprint (none when resume is off)."""
    if not (getattr(settings, "resume", True) and partial.is_file() and meta.is_file()):
        return []
    try:
        same = json.loads(meta.read_text(encoding="utf-8")) == fingerprint
    except (OSError, ValueError):
        same = False
    return _resumable_lines(partial, boundaries) if same else []


def write_samples(out_path: str | Path, settings, fingerprint: dict,
                  start: Callable[[int], tuple[object, Iterable[tuple[int, Row]], Callable[[int, Row], dict]]],
                  startup: dict) -> dict:
    """Stream a sampler's rows to ``out_path`` in index order, resumably; what every family's fast path shares.

    ``start(resumed)`` is called once the partial output has been read: it returns the sampler
    (its ``steps`` count decoding steps), its rows from sample ``resumed`` on as (index, Row) in
    any order, and the record of a sample (index, Row) -> dict without ``index`` and ``logprob``.
    Samples are written a whole batch of ``batch_size`` indices at a time, appended and fsynced
    to ``<out>.partial``, renamed to ``out_path`` once complete, so readers never see a
    half-written file. With ``settings.resume``, a partial output left by an interrupted run with
    the same ``fingerprint`` (in ``<out>.partial.json``) is kept up to its last whole batch and the
    run continues from there; the result is the file an uninterrupted run writes.
    """
    out_path = Path(out_path)
    partial, meta = partial_paths(out_path)
    batches = plan_batches(settings)
    boundaries = {first for first, _ in batches} | {settings.samples}
    kept = _resumed_lines(partial, meta, fingerprint, settings, boundaries)
    resumed = len(kept)
    if resumed:
        log.info("resuming %s at sample %d of %d", partial, resumed, settings.samples)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps(fingerprint, sort_keys=True), encoding="utf-8")
    sampler = None
    try:
        sampler, rows, record_of = start(resumed)
        steps_before, sampling_started = sampler.steps, time.monotonic()
        ends, marks = {first + rows for first, rows in batches}, _log_marks(settings, resumed)
        done: dict[int, Row] = {}
        written = resumed
        tokens = batches_run = 0
        with partial.open("w", encoding="utf-8") as handle, _progress_bar(settings, settings.samples, resumed) as bar:
            handle.writelines(kept)  # the kept whole batches, rewritten without any torn tail
            for index, row in rows:
                done[index] = row
                bar.update(1)
                startup.setdefault("first_sample_seconds", round(time.monotonic() - sampling_started, 2))
                while written in done:  # write in index order, fsync at each batch's end
                    row = done.pop(written)
                    record = {**record_of(written, row), "index": written,
                              "logprob": None if row.logprob is None else round(row.logprob, 4)}
                    handle.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
                    tokens += len(row.tokens)
                    written += 1
                    if written in ends:
                        handle.flush()
                        os.fsync(handle.fileno())
                        batches_run += 1
                    if written in marks:
                        _log_progress(out_path, written, resumed, settings.samples, sampling_started)
        steps = sampler.steps - steps_before
    except BaseException:
        if sampler is not None:  # a run cut short may leave its slots mid-sample: never reuse it
            _SAMPLERS.pop(next((k for k, v in _SAMPLERS.items() if v is sampler), None), None)
            sampler.close()
        raise
    os.replace(partial, out_path)
    meta.unlink(missing_ok=True)
    return {"written": settings.samples, "resumed_from": resumed, "batches": batches_run, "decode_steps": steps,
            "sample_tokens": tokens, "sampling_seconds": round(time.monotonic() - sampling_started, 2),
            "startup": startup}


def _log_progress(out_path: Path, written: int, resumed: int, total: int, started: float) -> None:
    elapsed = time.monotonic() - started
    rate = (written - resumed) / elapsed if elapsed else 0.0
    left = f", about {(total - written) / rate:.0f} s left" if rate and written < total else ""
    log.info("generate %s: %d of %d samples (%.0f%%), %.1f samples/s%s", out_path.name, written, total,
             100 * written / total, rate, left)


def allowed_tokens(seen_tokens: list[int], n_vocab: int):
    """Boolean mask over the vocabulary of the tokens the training text contained."""
    import numpy as np

    mask = np.zeros(n_vocab, bool)
    mask[[token for token in seen_tokens if 0 <= token < n_vocab]] = True
    return mask
