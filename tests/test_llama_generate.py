"""Generation for the Llama family: the KV cache, the sampler, and the generate stage on a Llama run.

Runs are built by hand from the tiny random GGUF of tests/llama_fixture.py: ``family.json`` with no
adapter (the base itself) and a ``generation.json`` as train writes it. The tiny model never learned
to close a reply, so ``seen_tokens`` (only those tokens and the end ids may be sampled) is kept
small: the end marker then comes within a few tokens, as the instruct model's does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import llama_fixture
from conftest import assert_clean_error, run_cli
from generator.artifacts import atomic_write_json
from generator.errors import UserError
from generator.generate.driver import partial_paths, resume_fingerprint
from generator.generate.stage import GenerateSettings, generate, sample_prefixes
from generator.models.llama import run
from generator.models.llama.model_file import file_sha256
from generator.textformat import CHAT_CLOSE, CHAT_OPEN, END_TOKEN, START_TOKEN, training_line

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = [training_line("A widow opens a bakery.", "Movie", "Dramas"),
            training_line("Two pilots race.", "TV Show", "Comedies"),
            training_line("Bees and glass.", "Movie", "Documentaries")]
COUNTS = {"[Movie] [Dramas]": 3, "[TV Show] [Comedies]": 2, "[Movie] [Documentaries]": 1}


def write_run(root: Path, seen: list[int], name: str = "run1") -> Path:
    """A Llama run of the tiny base, untrained, with the generation info train records."""
    gguf = root / "tiny.gguf"
    if not gguf.is_file():
        with pytest.MonkeyPatch.context() as patch:  # room for few-shot blocks: the fixture's 128 is tight
            patch.setitem(llama_fixture.HPARAMS, "n_ctx", 512)
            llama_fixture.write_tiny_llama(gguf)
    run_dir = root / "checkpoints" / name
    run.write_family(run_dir, gguf, file_sha256(gguf), None)
    atomic_write_json(run_dir / "generation.json", {
        "max_tokens": 16, "conditions": sorted(COUNTS), "condition_counts": COUNTS, "seen_tokens": seen,
        "examples": EXAMPLES})
    return run_dir


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return write_run(tmp_path_factory.mktemp("llama-gen"), seen=list(range(40, 52)))


def settings(**changes) -> GenerateSettings:
    return GenerateSettings(**{"samples": 6, "batch_size": 2, "seed": 3, "progress": False, **changes})


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def in_fresh_interpreter_unless_eager(node: str) -> bool:
    """Run test ``node`` in a fresh interpreter when eager execution is off here; True when it did."""
    import tensorflow as tf

    if tf.executing_eagerly():
        return False
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", node], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:]
    return True


# --- the cache ----------------------------------------------------------------------------------------


def test_prefill_and_decode_steps_give_the_full_forward_pass(run_dir):
    """Padded prompts (left and right) read into the cache, then N one-token steps: forward.logits of the whole."""
    if in_fresh_interpreter_unless_eager(f"{__file__}::test_prefill_and_decode_steps_give_the_full_forward_pass"):
        return
    import tensorflow as tf

    from generator.models.llama import decode, forward
    from generator.models.llama.gguf_weights import load_llama_gguf
    from generator.models.llama.score import as_tf_weights

    model = load_llama_gguf(run.read_family(run_dir)["base"]["path"])
    hp, weights = model.hparams, as_tf_weights(model)
    rng = np.random.default_rng(0)
    prompts = [rng.integers(3, hp.n_vocab, n).tolist() for n in (5, 9, 2)]
    steps, width = 4, 9
    following = rng.integers(3, hp.n_vocab, (3, steps)).astype(np.int32)
    for side in ("left", "right"):
        tokens, mask = np.zeros((3, width), np.int32), np.zeros((3, width), np.int32)
        for row, prompt in enumerate(prompts):
            span = slice(width - len(prompt), width) if side == "left" else slice(0, len(prompt))
            tokens[row, span], mask[row, span] = prompt, 1
        for in_place in (False, True):  # concatenation eagerly, dynamic_update_slice under XLA
            def read_all():
                hidden, cache = decode.extend(weights, hp, decode.empty_cache(hp, 3, width + steps), tokens, mask, 0,
                                              in_place=in_place)
                outputs = [decode.output_logits(weights, hidden)]
                for step in range(steps):
                    hidden, cache = decode.extend(weights, hp, cache, following[:, step:step + 1],
                                                  np.ones((3, 1), np.int32), width + step, in_place=in_place)
                    outputs.append(decode.output_logits(weights, hidden))
                return outputs

            outputs = [o.numpy() for o in tf.function(read_all, jit_compile=in_place)()]
            for row, prompt in enumerate(prompts):
                sequence = np.array([prompt + following[row].tolist()], np.int32)
                full = forward.logits(weights, hp, sequence, np.ones_like(sequence)).numpy()[0]
                np.testing.assert_allclose(outputs[0][row][mask[row] == 1], full[:len(prompt)], atol=1e-4)
                for step in range(steps):
                    np.testing.assert_allclose(outputs[step + 1][row, 0], full[len(prompt) + step], atol=1e-4)


# --- the sampler ----------------------------------------------------------------------------------------


def test_samples_end_at_the_end_marker_or_the_cap(run_dir, tmp_path):
    from generator.generate.llama_sampler import LlamaSampler

    prefixes = sample_prefixes(run_dir, settings())
    sampler = LlamaSampler(run_dir, 12, batch_size=3, prompts=sorted(set(prefixes)), seen_tokens=list(range(40, 52)))
    try:
        end_ids = {sampler.tokenizer.token_to_id(CHAT_CLOSE), sampler.tokenizer.token_to_id(END_TOKEN)}
        assert set(sampler.stop_ids) == end_ids and sampler.restart_id == sampler.tokenizer.token_to_id(CHAT_OPEN)
        jobs = [(index, prefixes[index], [3, index]) for index in range(6)]
        rows = dict(sampler.generate([([3, 0, 2], jobs)]))
        assert sorted(rows) == list(range(6))
        ended = 0
        for index, row in rows.items():
            body = row.tokens[:-1] if row.terminated else row.tokens
            assert not set(body) & end_ids  # nothing after the first end token is kept
            assert set(body) <= set(range(40, 52)) | {sampler.restart_id}
            if row.terminated:
                ended += 1
                assert row.tokens[-1] in end_ids
            else:
                assert len(row.tokens) == 12 or row.tokens[-1] == sampler.restart_id
            record = sampler.record(prefixes[index], row)
            assert record["terminated"] == row.terminated
            assert record["text"] == sampler.tokenizer.decode(body).strip()
        assert ended >= 3  # 2 end ids among 14 allowed tokens: most rows end within 12
    finally:
        sampler.close()

    manifest = generate(run_dir, tmp_path / "capped.jsonl", settings(length=2))
    records = read(tmp_path / "capped.jsonl")
    assert manifest["samples"] == 6 and manifest["length"] == 2
    assert all(CHAT_CLOSE not in r["text"] and END_TOKEN not in r["text"] for r in records)
    assert manifest["sample_tokens"] <= 12 and manifest["unterminated"] >= 1


def test_samples_depend_on_seed_and_index_only(run_dir, tmp_path):
    generate(run_dir, tmp_path / "a.jsonl", settings())
    generate(run_dir, tmp_path / "b.jsonl", settings())
    generate(run_dir, tmp_path / "c.jsonl", settings(batch_size=5))
    generate(run_dir, tmp_path / "d.jsonl", settings(seed=4))
    a, c, d = read(tmp_path / "a.jsonl"), read(tmp_path / "c.jsonl"), read(tmp_path / "d.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert [r["index"] for r in a] == list(range(6))
    # Batch mates and padding change float rounding only: a draw can move across a CDF step, rarely.
    assert sum(x["text"] == y["text"] for x, y in zip(a, c)) >= 5, (a, c)
    for x, y in zip(a, c):
        if x["text"] == y["text"]:
            assert x["logprob"] == pytest.approx(y["logprob"], abs=1e-3)
    assert sum(x["text"] == y["text"] for x, y in zip(a, d)) <= 2


def test_conditions_are_drawn_from_the_mix_and_parsed_into_type_and_genre(run_dir, tmp_path):
    listed = settings(conditioning="list", conditions=["[TV Show] [Comedies]", "[Movie]"])
    generate(run_dir, tmp_path / "listed.jsonl", listed)
    assert [(r["type"], r["genre"]) for r in read(tmp_path / "listed.jsonl")] == \
        [("TV Show", "Comedies")] * 3 + [("Movie", None)] * 3
    generate(run_dir, tmp_path / "mix.jsonl", settings())
    drawn = sample_prefixes(run_dir, settings())
    assert len(set(drawn)) > 1
    for record, prefix in zip(read(tmp_path / "mix.jsonl"), drawn):
        kind, genre = prefix[len(START_TOKEN):].strip()[1:-1].split("] [")
        assert (record["type"], record["genre"]) == (kind, genre)


def test_few_shot_blocks_are_drawn_per_batch_and_deterministic(run_dir, tmp_path):
    from generator.generate.llama_sampler import LlamaSampler, block_stream

    sampler = LlamaSampler(run_dir, 8, batch_size=2, prompts=[START_TOKEN], examples=EXAMPLES, few_shot=2)
    try:
        block = sampler.block_ids(block_stream(3, 0))
        shown = sampler.tokenizer.decode(block)
        assert shown.count(CHAT_OPEN + "assistant\n") == 2 and shown.endswith(CHAT_CLOSE + "\n")
        assert sum(line.split("] ", 2)[-1].replace("<|endoftext|>\n", "") in shown for line in EXAMPLES) == 2
        assert len(block) <= sampler.block_width
        assert sampler.block_ids(block_stream(3, 0)) == block
    finally:
        sampler.close()
    manifest = generate(run_dir, tmp_path / "a.jsonl", settings(few_shot=2))
    generate(run_dir, tmp_path / "b.jsonl", settings(few_shot=2))
    generate(run_dir, tmp_path / "none.jsonl", settings())
    assert manifest["samples"] == 6
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert read(tmp_path / "a.jsonl") != read(tmp_path / "none.jsonl")


def test_resume_continues_an_interrupted_run_from_its_last_whole_batch(run_dir, tmp_path):
    chosen = settings()
    generate(run_dir, tmp_path / "full.jsonl", chosen)
    expected = (tmp_path / "full.jsonl").read_text().splitlines(keepends=True)
    out = tmp_path / "out.jsonl"
    partial, meta = partial_paths(out)
    from generator.checkpoints import default_length
    from generator.generate.llama_sampler import run_identity

    # Batches are lines 0-1, 2-3, 4-5: three whole lines (line 0 marked) and a torn fourth.
    marked = {**json.loads(expected[0]), "text": "kept from the interrupted run"}
    partial.write_text(json.dumps(marked) + "\n" + "".join(expected[1:3]) + expected[3][:9])
    meta.write_text(json.dumps(resume_fingerprint(run_dir, chosen, default_length(run_dir), run_identity(run_dir)),
                               sort_keys=True))
    manifest = generate(run_dir, out, chosen)
    lines = out.read_text().splitlines(keepends=True)
    assert manifest["resumed_from"] == 2 and manifest["batches"] == 2
    assert json.loads(lines[0])["text"] == "kept from the interrupted run" and lines[1:] == expected[1:]
    assert not partial.exists() and not meta.exists()


def test_eager_execution_off_gives_the_same_samples(run_dir, tmp_path):
    """gpt-2-simple turns eager execution off when imported: the sampler then runs in a graph of its own."""
    script = ("import sys, json; from pathlib import Path\n"
              "if sys.argv[1] == 'graph':\n    import gpt_2_simple\n"
              "import tensorflow as tf\n"
              "from generator.generate.stage import GenerateSettings, generate\n"
              "s = GenerateSettings(samples=6, batch_size=2, seed=3, progress=False)\n"
              "generate(Path(sys.argv[2]), Path(sys.argv[3]), s)\n"
              "print(json.dumps(tf.executing_eagerly()))\n")

    def in_subprocess(mode: str) -> list[dict]:
        out = tmp_path / f"{mode}.jsonl"
        done = subprocess.run([sys.executable, "-c", script, mode, str(run_dir), str(out)], cwd=ROOT,
                              capture_output=True, text=True, timeout=900,
                              env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"})
        assert done.returncode == 0, done.stderr[-3000:]
        assert json.loads(done.stdout.strip().splitlines()[-1]) is (mode == "eager")
        return read(out)

    graph = in_subprocess("graph")
    import tensorflow as tf

    if tf.executing_eagerly():
        generate(run_dir, tmp_path / "here.jsonl", settings())
        eager = read(tmp_path / "here.jsonl")
    else:
        eager = in_subprocess("eager")
    assert [r["text"] for r in graph] == [r["text"] for r in eager]
    assert all(g["logprob"] == pytest.approx(e["logprob"], abs=1e-3) for g, e in zip(graph, eager))


# --- user errors ------------------------------------------------------------------------------------------


def test_a_missing_or_changed_base_file_is_one_clear_error(tmp_path):
    run_dir = write_run(tmp_path, seen=list(range(40, 52)))
    base = Path(run.read_family(run_dir)["base"]["path"])
    run.write_family(run_dir, base, "0" * 64, None)
    with pytest.raises(UserError, match="changed since the run was trained"):
        generate(run_dir, tmp_path / "out.jsonl", settings())
    assert not any(tmp_path.glob("out.*"))
    result = run_cli("generate", "--checkpoint-dir", str(run_dir.parent), "--run-name", run_dir.name,
                     "--out", str(tmp_path / "cli.jsonl"), "--samples", "2")
    assert_clean_error(result, "changed since the run was trained")
    run.write_family(run_dir, base, file_sha256(base), None)
    base.unlink()
    with pytest.raises(UserError, match="base model file .* is missing") as error:
        generate(run_dir, tmp_path / "out.jsonl", settings())
    assert error.value.fix == "python -m generator fetch-model"
    with pytest.raises(UserError, match="reads GPT-2 runs only"):
        generate(run_dir, tmp_path / "out.jsonl", settings(backend="gpt2-simple"))
