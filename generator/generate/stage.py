"""Generate: sample descriptions from a fine-tuned checkpoint into samples JSONL.

Each sample is generated with the prefix ``<|startoftext|>`` (plus an optional
control prefix such as ``[TV Show] [Comedies] ``), cut at ``<|endoftext|>``,
and written without the prefix::

    {"text": "...", "title": "...", "terminated": true, "type": "TV Show", "genre": "Comedies", "index": 0, ...}

(``title`` only from a run trained on titled text: ``generation.json``'s ``titles``.)

``terminated`` is false when the length cap came before the end marker; curate
drops those. Two backends read the same gpt-2-simple checkpoint:
``gpt2-simple`` (``gpt2.generate``, the reference) and ``fast`` (an early-stopping
sampler over the same checkpoint, :mod:`generator.generate.driver`). A Llama-family
run (``family.json``, :mod:`generator.models.llama.run`) is sampled by
:mod:`generator.generate.llama_sampler` (``fast`` only), its requests rendered as chat.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path

from ..artifacts import check_output_file, path_inside, write_jsonl, write_manifest
from ..checkpoints import GENERATION_INFO, default_length, read_generation_info, resolve_run
from ..console import library_output
from ..errors import UserError
from ..settings import check_declared, setting
from ..textformat import START_TOKEN, generation_prefix, is_condition, parse_sample

log = logging.getLogger(__name__)

BACKENDS = ("gpt2-simple", "fast")
CONDITIONING = ("catalog", "none", "list")


@dataclasses.dataclass
class GenerateSettings:
    samples: int = setting(200, "samples generated in the night's first round", at_least=1)
    target_kept: int = setting(0, "aim of the night: after the first round, generate and curate further rounds "
                               "until this many descriptions pass curation or a budget is spent (0 = one round)",
                               at_least=0)
    max_samples: int = setting(4000, "budget: samples the night may generate in all its rounds", at_least=1)
    max_minutes: float = setting(0.0, "budget: minutes the further rounds may take (0 = no limit)", at_least=0)
    batch_size: int = setting(20, "samples decoded together", at_least=1)
    length: int = setting(0, "max new tokens per sample; 0 = from the training data (longest description + 25%)",
                         at_least=0, at_most=1023)
    temperature: float = setting(0.8, "sampling temperature", above=0, at_most=100)
    top_k: int = setting(0, "sample among the k likeliest tokens (0 = off)", at_least=0)
    top_p: float = setting(0.9, "nucleus sampling: the smallest set of tokens with this total probability (0 = off)",
                           at_least=0, at_most=1)
    seed: int = setting(42, "generation seed; sample i always draws from the stream (seed, i); a night adds its "
                        "own offset (generator.night.night_seed), so each night writes new descriptions",
                        at_least=0)
    backend: str = setting("fast", "fast: early-stopping sampler over the same checkpoint; gpt2-simple: "
                           "gpt_2_simple.generate, the reference, which always decodes `length` tokens",
                           choices=BACKENDS)
    conditioning: str = setting("catalog", "catalog: each sample's [type] [genre] prefix drawn from the training "
                                "catalog's own mix (recorded with the checkpoint), from its own stream (seed, index); "
                                "list: generate.conditions split evenly; none: no prefix", choices=CONDITIONING)
    conditions: list = setting([], 'control-prefix mix such as "[TV Show] [Comedies]" or "[Movie]" for conditioning '
                               '"list" (given with "catalog", they are used as a list)')
    few_shot: int = setting(0, "Llama family: catalog examples (the run's generation.json examples) shown as earlier "
                            "chat exchanges before each request; one draw per batch, from (seed, the batch's first "
                            "index), read once for the whole batch (0 = none)", at_least=0, at_most=32)
    mask_unseen_tokens: bool = setting(True, "fast backend: never sample a token the training text never contained "
                                       "(BPE merge intermediates)")
    threads: int = setting(0, "TensorFlow threads (0 = all cores)", at_least=0)
    compact: bool = setting(True, "no longer used: the fast backend batches continuously (a finished row's slot "
                            "takes the next sample); accepted so existing configs keep loading")
    progress: bool = setting(True, "fast backend: progress bar on stderr, shown only on a terminal")
    resume: bool = setting(True, "fast backend: continue an interrupted run's <out>.partial when the checkpoint "
                           "and settings are the same")
    compile_cache: str = setting("xla-cache", "XLA's persistent compilation cache, relative to paths.workdir: a "
                                 "process reuses the compiled sampler an earlier one saved for the same model and "
                                 "settings (\"\" = off)")

    def validate(self) -> None:
        check_declared(self, "generate")  # the loader checked a loaded config; this guards direct callers
        if self.conditioning == "list" and not self.conditions:
            raise UserError("generate.conditioning is \"list\" but generate.conditions is empty",
                            "give conditions (--condition \"[Movie] [Dramas]\") or use conditioning \"catalog\"")
        for condition in self.conditions:
            if not is_condition(condition):
                raise UserError(f"bad generation condition {condition!r}",
                                "write conditions like \"[TV Show] [Comedies]\", \"[Movie]\" or \"[Dramas]\"")


def plan_conditions(settings: GenerateSettings) -> list[tuple[str, int]]:
    """Split ``samples`` across the requested conditions: [(prefix, count), ...]."""
    conditions = settings.conditions or [""]
    base, extra = divmod(settings.samples, len(conditions))
    plan = []
    for position, condition in enumerate(conditions):
        count = base + (1 if position < extra else 0)
        if count:
            plan.append((generation_prefix(condition), count))
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


def possible_prefixes(run_dir: str | Path, settings: GenerateSettings) -> list[str]:
    """Every prefix a sample may start with under ``settings.conditioning``, whatever ``samples`` and ``seed``.

    The fast backend's sampler is built for these, so one compiled sampler serves every
    round of a night (a round's own draw of conditions may leave some out).
    """
    mode = "list" if settings.conditioning == "catalog" and settings.conditions else settings.conditioning
    counts = read_generation_info(run_dir).get("condition_counts") if mode == "catalog" else None
    if counts:
        return sorted(START_TOKEN + " " + condition for condition in counts)
    return sorted({generation_prefix(condition) for condition in (settings.conditions if mode == "list" else [])
                   or [""]})


def generate(run_dir: str | Path, out_path: str | Path, settings: GenerateSettings) -> dict:
    """Sample ``settings.samples`` descriptions from the checkpoint in ``run_dir`` into ``out_path``.

    ``run_dir`` is a run folder in gpt-2-simple's layout: a release
    (:attr:`generator.checkpoints.Release.path`) or a training run. Returns the manifest.

    ``out_path`` is checked first (a folder or an unwritable place fails before any sampling)
    and locked while it is written (two samplers would append to one ``.partial``).
    """
    from ..lock import exclusive

    settings.validate()  # the loader validated a loaded config; this guards direct callers
    out_path = check_output_file(out_path)
    with exclusive(out_path, "samples file"):
        return _generate(Path(run_dir), out_path, settings)


def _generate(run_dir: Path, out_path: Path, settings: GenerateSettings) -> dict:
    path_inside(run_dir.parent, run_dir.name, "train.run_name")  # the run folder must be inside its root
    from ..models.llama.run import is_llama_run

    llama = is_llama_run(run_dir)
    if not llama:
        run_dir = resolve_run(run_dir.parent, run_dir.name)
    elif settings.backend != "fast":
        raise UserError(f"generate.backend {settings.backend!r} reads GPT-2 runs only, and {run_dir} is a Llama run",
                        'use generate.backend "fast"')
    length = settings.length or default_length(run_dir)
    started = time.monotonic()
    if llama:
        from .llama_sampler import generate_llama

        stats = generate_llama(run_dir, out_path, settings, length, sample_prefixes(run_dir, settings),
                               prompts=possible_prefixes(run_dir, settings), titled=titled_run(run_dir))
    elif settings.backend == "fast":
        from .driver import generate_fast

        seen = read_generation_info(run_dir).get("seen_tokens") if settings.mask_unseen_tokens else None
        stats = generate_fast(run_dir, out_path, settings, length, sample_prefixes(run_dir, settings), seen,
                              prompts=possible_prefixes(run_dir, settings), titled=titled_run(run_dir))
    else:
        records = _generate_gpt2_simple(run_dir, settings, length)
        write_jsonl(out_path, records)
        stats = {"written": len(records)}
    elapsed = time.monotonic() - started
    from ..artifacts import read_jsonl

    records = list(read_jsonl(out_path))
    terminated = sum(1 for r in records if r.get("terminated", True))
    return write_manifest(
        out_path, "generate",
        run_dir=str(run_dir), samples=len(records), terminated=terminated,
        unterminated=len(records) - terminated, length=length, seconds=round(elapsed, 2),
        samples_per_second=round(len(records) / elapsed, 2) if elapsed else None,
        settings=dataclasses.asdict(settings), samples_path=str(out_path), **{k: v for k, v in stats.items() if k != "written"},
    )


def titled_run(run_dir: str | Path) -> bool:
    """Was the run trained on titled text (its samples then carry a ``title``)? A run recorded before
    titles existed was not."""
    return bool(read_generation_info(run_dir).get("titles"))


def _generate_gpt2_simple(run_dir: Path, settings: GenerateSettings, length: int) -> list[dict]:
    """Reference backend: gpt2.generate, which always decodes ``length`` tokens per row."""
    from ..tf_runtime import import_gpt2, new_session

    titled = titled_run(run_dir)

    gpt2 = import_gpt2()
    checkpoint_root, run_name = run_dir.parent, run_dir.name  # gpt-2-simple names a run by folder and name
    sess = new_session(settings.threads)
    prefixes = sample_prefixes(run_dir, settings)
    groups: dict[str, list[int]] = {}  # prefix -> its samples' indices, in order of first use
    for index, prefix in enumerate(prefixes):
        groups.setdefault(prefix, []).append(index)
    records: list[dict] = []
    try:
        with library_output():
            gpt2.load_gpt2(sess, run_name=run_name, checkpoint_dir=str(checkpoint_root))
        for prefix, indices in groups.items():
            count = len(indices)
            batch_size = min(settings.batch_size, count)
            # gpt2.generate insists on nsamples % batch_size == 0: round up, keep the first `count`.
            nsamples = math.ceil(count / batch_size) * batch_size
            with library_output():
                texts = gpt2.generate(
                    sess, run_name=run_name, checkpoint_dir=str(checkpoint_root), return_as_list=True,
                    nsamples=nsamples, batch_size=batch_size, length=length, temperature=settings.temperature,
                    top_k=settings.top_k, top_p=settings.top_p, prefix=prefix, seed=settings.seed + len(records),
                    include_prefix=True,
                )
            for index, raw in zip(indices, texts[:count]):
                records.append({**parse_sample(raw, prefix, titled), "index": index})
    finally:
        sess.close()
    return sorted(records, key=lambda record: record["index"])


def add_cli(subparsers) -> None:
    from ..config import add_setting_flag

    parser = subparsers.add_parser(
        "generate", parents=[subparsers.common],
        help="sample descriptions from a trained checkpoint into samples JSONL",
        description="Sample descriptions with prefix <|startoftext|> (plus optional control prefixes), cut at "
        "<|endoftext|>, into OUT.jsonl with OUT.manifest.json beside it.",
    )
    parser.add_argument("--out", required=True, metavar="OUT.jsonl", help="samples JSONL to write")
    add_setting_flag(parser, "--checkpoint-dir", "paths.checkpoint_dir")
    add_setting_flag(parser, "--run-name", "train.run_name")
    add_setting_flag(parser, "--samples", "generate.samples", "--nsamples")
    add_setting_flag(parser, "--batch-size", "generate.batch_size")
    add_setting_flag(parser, "--length", "generate.length")
    add_setting_flag(parser, "--temperature", "generate.temperature")
    add_setting_flag(parser, "--top-k", "generate.top_k")
    add_setting_flag(parser, "--top-p", "generate.top_p")
    add_setting_flag(parser, "--seed", "generate.seed")
    add_setting_flag(parser, "--backend", "generate.backend")
    add_setting_flag(parser, "--condition", "generate.conditions", metavar="PREFIX")
    add_setting_flag(parser, "--conditioning", "generate.conditioning")
    add_setting_flag(parser, "--few-shot", "generate.few_shot")
    parser.set_defaults(func=_cli)


def _cli(args, config) -> int:
    from ..tf_runtime import use_workdir_compile_cache

    use_workdir_compile_cache(config)
    manifest = generate(Path(config.paths.checkpoint_root) / config.train.run_name, args.out, config.generate)
    print(f"generated {manifest['samples']} samples ({manifest['terminated']} terminated) -> {args.out}")
    return 0
