"""Generate: sample descriptions from a fine-tuned checkpoint into samples JSONL.

Each sample is generated with the prefix ``<|startoftext|>`` (plus an optional
control prefix such as ``[TV Show] [Comedies] ``), cut at ``<|endoftext|>``,
and written without the prefix::

    {"text": "...", "terminated": true, "type": "TV Show", "genre": "Comedies", "index": 0, ...}

``terminated`` is false when the length cap came before the end marker; curate
drops those. Two backends read the same gpt-2-simple checkpoint:
``gpt2-simple`` (``gpt2.generate``, the reference) and ``fast`` (an early-stopping
sampler over the same graph, :mod:`generator.fast_sample`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from pathlib import Path

from . import END_TOKEN, START_TOKEN
from .artifacts import atomic_write_json, write_jsonl, write_manifest
from .errors import UserError
from .ingest import control_prefix, split_control

log = logging.getLogger(__name__)

BACKENDS = ("gpt2-simple", "fast")
CONDITIONING = ("catalog", "none", "list")
GENERATION_INFO = "generation.json"  # written into a run by train: data-derived defaults for sampling


@dataclasses.dataclass
class GenerateSettings:
    samples: int = 200
    batch_size: int = 20
    length: int = 0
    temperature: float = 0.8
    top_k: int = 0
    top_p: float = 0.9
    seed: int = 42
    backend: str = "fast"
    conditions: list = dataclasses.field(default_factory=list)
    # "catalog": each sample's "[type] [genre]" prefix drawn from the training catalog's own mix
    # (generation.json); "list": `conditions`, split evenly; "none": no prefix. Conditions given
    # while this is "catalog" (the default) are used as a list.
    conditioning: str = "catalog"
    # fast backend: never sample a token the training text never contained (BPE merge intermediates).
    mask_unseen_tokens: bool = True
    threads: int = 0
    # No longer used (the fast backend batches continuously); accepted so existing configs keep loading.
    compact: bool = True
    # fast backend: progress bar on stderr (only when it is a terminal).
    progress: bool = True
    # fast backend: continue an interrupted run's <out>.partial (same checkpoint and settings).
    resume: bool = True

    def validate(self) -> None:
        if self.samples < 1:
            raise UserError(f"generate.samples must be >= 1, got {self.samples}", "pass --samples 1 or more")
        if self.batch_size < 1:
            raise UserError(f"generate.batch_size must be >= 1, got {self.batch_size}", "pass --batch-size 1 or more")
        if self.backend not in BACKENDS:
            raise UserError(f"unknown generate.backend {self.backend!r}", f"use one of: {', '.join(BACKENDS)}")
        if self.temperature <= 0:
            raise UserError(f"generate.temperature must be > 0, got {self.temperature}", "use e.g. 0.7")
        if not 0 <= self.top_p <= 1 or self.top_k < 0:
            raise UserError("generate.top_p must be in [0, 1] and top_k >= 0", "fix --top-p / --top-k")
        if self.length < 0 or self.length > 1023:
            raise UserError(f"generate.length must be 0 (auto) to 1023, got {self.length}", "fix --length")
        if self.conditioning not in CONDITIONING:
            raise UserError(f"unknown generate.conditioning {self.conditioning!r}",
                            f"use one of: {', '.join(CONDITIONING)}")
        if self.conditioning == "list" and not self.conditions:
            raise UserError("generate.conditioning is \"list\" but generate.conditions is empty",
                            "give conditions (--condition \"[Movie] [Dramas]\") or use conditioning \"catalog\"")
        for condition in self.conditions:
            kind, genre, rest = split_control(condition + " x")
            if rest != "x" or not (kind or genre):
                raise UserError(f"bad generation condition {condition!r}",
                                "write conditions like \"[TV Show] [Comedies]\", \"[Movie]\" or \"[Dramas]\"")


def write_generation_info(run_dir: str | Path, train_text: str | Path) -> dict:
    """Record, in the run, what sampling needs to know about the training data.

    ``max_tokens``: the longest training description in tokens (the default
    length cap); ``conditions``: the control prefixes seen; ``condition_counts``:
    how many descriptions had each complete ``[type] [genre]`` prefix (the mix
    catalog conditioning draws from); ``seen_tokens``: the token ids the
    training text contains (the others are never sampled). It lives in the run,
    so it travels with the checkpoint and its promoted copies.
    """
    from collections import Counter

    from gpt_2_simple.src import encoder as gpt2_encoder

    enc = gpt2_encoder.get_encoder(str(run_dir))
    longest, controls, pairs = 0, set(), Counter()
    seen = set(enc.encode("\n"))  # gpt-2-simple encodes the file whole: lines are joined by newlines
    for line in Path(train_text).read_text(encoding="utf-8").splitlines():
        seen.update(enc.encode(line))
        if not line.startswith(START_TOKEN):
            continue
        body = line[len(START_TOKEN):]
        longest = max(longest, len(enc.encode(body)))
        kind, genre, _ = split_control(body.replace(END_TOKEN, ""))
        if kind or genre:
            controls.add(control_prefix(kind or "", genre or "").strip())
        if kind and genre:
            pairs[control_prefix(kind, genre).strip()] += 1
    info = {"max_tokens": longest, "conditions": sorted(controls), "condition_counts": dict(sorted(pairs.items())),
            "seen_tokens": sorted(seen)}
    atomic_write_json(Path(run_dir) / GENERATION_INFO, info)
    return info


def read_generation_info(run_dir: str | Path) -> dict:
    path = Path(run_dir) / GENERATION_INFO
    return json.loads(path.read_text()) if path.is_file() else {}


def default_length(run_dir: Path) -> int:
    """Length cap when none is set: the longest training description plus a 25 % margin."""
    info_path = run_dir / GENERATION_INFO
    if info_path.is_file():
        longest = json.loads(info_path.read_text())["max_tokens"]
        return min(1023, math.ceil(longest * 1.25) + 8)
    return 1023  # gpt-2-simple's own default


def parse_sample(raw: str, prefix: str) -> dict:
    """Turn raw decoded text (prefix + continuation) into a samples-JSONL record."""
    body = raw[len(prefix):] if raw.startswith(prefix) else raw
    end = body.find(END_TOKEN)
    terminated = end >= 0
    if terminated:
        body = body[:end]
    condition = prefix[len(START_TOKEN):] if prefix.startswith(START_TOKEN) else ""
    kind, genre, text = split_control(condition + body)
    return {"text": text, "terminated": terminated, "type": kind, "genre": genre}


def plan_conditions(settings: GenerateSettings) -> list[tuple[str, int]]:
    """Split ``samples`` across the requested conditions: [(prefix, count), ...]."""
    conditions = settings.conditions or [""]
    base, extra = divmod(settings.samples, len(conditions))
    plan = []
    for position, condition in enumerate(conditions):
        count = base + (1 if position < extra else 0)
        if count:
            # No trailing space: in training text the space belongs to the next word's token.
            prefix = START_TOKEN + (" " + condition.strip() if condition.strip() else "")
            plan.append((prefix, count))
    return plan


def condition_stream(seed: int, index: int) -> list[int]:
    """The random stream choosing sample ``index``'s condition (apart from its token stream)."""
    return [seed & 0xFFFFFFFFFFFFFFFF, index, 1]


def draw_conditions(counts: dict[str, int], seed: int, indices) -> list[str]:
    """Each sample's condition drawn from ``counts``, from its own stream: the same whatever the batching."""
    import numpy as np

    names = sorted(counts)
    cumulative = np.cumsum([counts[name] for name in names], dtype=np.float64)
    picks = [np.random.default_rng(condition_stream(seed, index)).random() * cumulative[-1] for index in indices]
    return [names[int(i)] for i in np.searchsorted(cumulative, picks, side="right")]


def sample_prefixes(run_dir: str | Path, settings: GenerateSettings) -> list[str]:
    """The prefix of every sample, by index, under ``settings.conditioning``."""
    mode = "list" if settings.conditioning == "catalog" and settings.conditions else settings.conditioning
    if mode == "catalog":
        counts = read_generation_info(run_dir).get("condition_counts")
        if counts:
            return [START_TOKEN + " " + condition
                    for condition in draw_conditions(counts, settings.seed, range(settings.samples))]
        log.warning("%s records no [type] [genre] mix (trained without prefixes, or before it was recorded): "
                    "generating unconditioned", Path(run_dir) / GENERATION_INFO)
    listed = settings if mode == "list" else dataclasses.replace(settings, conditions=[])
    return [prefix for prefix, count in plan_conditions(listed) for _ in range(count)]


def allowed_tokens(run_dir: str | Path, n_vocab: int):
    """Boolean mask of the tokens the training text contained, or None if the run does not record them."""
    import numpy as np

    seen = read_generation_info(run_dir).get("seen_tokens")
    if not seen:
        return None
    mask = np.zeros(n_vocab, bool)
    mask[[token for token in seen if 0 <= token < n_vocab]] = True
    return mask


def resolve_run(checkpoint_root: str | Path, run_name: str) -> Path:
    run_dir = Path(checkpoint_root) / run_name
    if not (run_dir / "checkpoint").is_file():
        raise UserError(f"no trained checkpoint at {run_dir}",
                        "run the train stage first, or pass the --checkpoint-dir/--run-name of a trained run")
    return run_dir


def generate(checkpoint_root: str | Path, run_name: str, out_path: str | Path,
             settings: GenerateSettings | None = None) -> dict:
    """Sample ``settings.samples`` descriptions into ``out_path``; returns the manifest."""
    settings = settings or GenerateSettings()
    settings.validate()
    run_dir = resolve_run(checkpoint_root, run_name)
    length = settings.length or default_length(run_dir)
    started = time.monotonic()
    if settings.backend == "fast":
        from .fast_sample import generate_fast

        stats = generate_fast(run_dir, out_path, settings, length)
    else:
        records = _generate_gpt2_simple(checkpoint_root, run_name, settings, length)
        write_jsonl(out_path, records)
        stats = {"written": len(records)}
    elapsed = time.monotonic() - started
    from .artifacts import read_jsonl

    records = list(read_jsonl(out_path))
    terminated = sum(1 for r in records if r.get("terminated", True))
    return write_manifest(
        out_path, "generate",
        run_dir=str(run_dir), samples=len(records), terminated=terminated,
        unterminated=len(records) - terminated, length=length, seconds=round(elapsed, 2),
        samples_per_second=round(len(records) / elapsed, 2) if elapsed else None,
        settings=dataclasses.asdict(settings), samples_path=str(out_path), **{k: v for k, v in stats.items() if k != "written"},
    )


def _generate_gpt2_simple(checkpoint_root, run_name: str, settings: GenerateSettings, length: int) -> list[dict]:
    """Reference backend: gpt2.generate, which always decodes ``length`` tokens per row."""
    from .tf_runtime import import_gpt2, new_session

    gpt2 = import_gpt2()
    sess = new_session(settings.threads)
    prefixes = sample_prefixes(Path(checkpoint_root) / run_name, settings)
    groups: dict[str, list[int]] = {}  # prefix -> its samples' indices, in order of first use
    for index, prefix in enumerate(prefixes):
        groups.setdefault(prefix, []).append(index)
    records: list[dict] = []
    try:
        gpt2.load_gpt2(sess, run_name=run_name, checkpoint_dir=str(checkpoint_root))
        for prefix, indices in groups.items():
            count = len(indices)
            batch_size = min(settings.batch_size, count)
            # gpt2.generate insists on nsamples % batch_size == 0: round up, keep the first `count`.
            nsamples = math.ceil(count / batch_size) * batch_size
            texts = gpt2.generate(
                sess, run_name=run_name, checkpoint_dir=str(checkpoint_root), return_as_list=True,
                nsamples=nsamples, batch_size=batch_size, length=length, temperature=settings.temperature,
                top_k=settings.top_k, top_p=settings.top_p, prefix=prefix, seed=settings.seed + len(records),
                include_prefix=True,
            )
            for index, raw in zip(indices, texts[:count]):
                records.append({**parse_sample(raw, prefix), "index": index})
    finally:
        sess.close()
    return sorted(records, key=lambda record: record["index"])


def add_cli(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate", parents=[subparsers.common],
        help="sample descriptions from a trained checkpoint into samples JSONL",
        description="Sample descriptions with prefix <|startoftext|> (plus optional control prefixes), cut at "
        "<|endoftext|>, into OUT.jsonl with OUT.manifest.json beside it.",
    )
    parser.add_argument("--checkpoint-dir", required=True, metavar="DIR", help="checkpoint root (holds RUN_NAME/)")
    parser.add_argument("--run-name", required=True, metavar="NAME", help="checkpoint run name")
    parser.add_argument("--samples", type=int, metavar="N", help="number of samples")
    parser.add_argument("--out", required=True, metavar="OUT.jsonl", help="samples JSONL to write")
    parser.add_argument("--batch-size", type=int, metavar="B")
    parser.add_argument("--length", type=int, metavar="L", help="max new tokens (0 = from the training data)")
    parser.add_argument("--temperature", type=float, metavar="T")
    parser.add_argument("--top-k", type=int, metavar="K")
    parser.add_argument("--top-p", type=float, metavar="P")
    parser.add_argument("--seed", type=int, metavar="S")
    parser.add_argument("--backend", choices=BACKENDS, help="sampler (default from config)")
    parser.add_argument("--condition", action="append", metavar="PREFIX", dest="conditions",
                        help='control prefix such as "[TV Show] [Comedies]"; repeat for a mix')
    parser.add_argument("--conditioning", choices=CONDITIONING,
                        help="catalog: [type] [genre] drawn from the training mix; list: the --condition mix; none")
    parser.set_defaults(func=_cli)


def _cli(args, config) -> int:
    from .config import with_overrides

    config = with_overrides(config, generate={
        "samples": args.samples, "batch_size": args.batch_size, "length": args.length,
        "temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p, "seed": args.seed,
        "backend": args.backend, "conditions": args.conditions, "conditioning": args.conditioning})
    manifest = generate(args.checkpoint_dir, args.run_name, args.out, config.generate)
    print(f"generated {manifest['samples']} samples ({manifest['terminated']} terminated) -> {args.out}")
    return 0
