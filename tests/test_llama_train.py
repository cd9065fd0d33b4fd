"""Llama-family training on the tiny random GGUF: LoRA, resume, full fine-tune, held-out loss, releases, the night."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, SAMPLE_CATALOG
from generator.errors import UserError
from generator.models.llama import examples as chat
from generator.models.llama import run
from llama_fixture import write_tiny_llama

ROWS = 60  # descriptions of the sample catalog the tiny runs train on


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    write_tiny_llama(path)
    return path


def small_catalog(path: Path, rows: int = ROWS, start: int = 0) -> Path:
    with open(SAMPLE_CATALOG, newline="", encoding="utf-8") as source:
        reader = csv.DictReader(source)
        chosen = [row for index, row in enumerate(reader) if start <= index < start + rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=list(chosen[0]))
        writer.writeheader()
        writer.writerows(chosen)
    return path


def llama_config(workdir: Path, gguf: Path, **train):
    from generator.config import load_config

    overrides = {"paths": {"workdir": str(workdir)}, "ingest": {"validation_fraction": 0.2},
                 "model": {"family": "llama", "gguf_path": str(gguf), "name": "tiny-llama"},
                 "train": {"steps": 6, "save_every": 3, "batch_size": 4, "learning_rate": 0.01, **train}}
    return load_config(profile="test", overrides=overrides, environ={})


def ingested(workdir: Path, config, rows: int = ROWS, start: int = 0) -> Path:
    from generator.ingest import ingest

    ingest(str(small_catalog(workdir / f"catalog-{start}.csv", rows, start)), workdir / f"ingest-{start}", config.ingest)
    return workdir / f"ingest-{start}"


def train_run(config, ingest_dir: Path) -> dict:
    from generator.train import train

    return train(ingest_dir, config.paths.checkpoint_root, config.paths.models_root, config.model, config.train)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_gguf):
    """One LoRA run, 6 steps, trained once for the tests that only read it."""
    work = tmp_path_factory.mktemp("llama-trained")
    config = llama_config(work, tiny_gguf)
    ingest_dir = ingested(work, config)
    return config, ingest_dir, train_run(config, ingest_dir)


def tiny_network(gguf: Path, adapter, arrays, **options):
    from generator.models.llama.gguf_weights import load_llama_gguf
    from generator.models.llama.trainer import LlamaNetwork

    return LlamaNetwork(load_llama_gguf(gguf), adapter, arrays, **options)


def reference_logprobs(model, tokens, mask) -> np.ndarray:
    """``forward.next_token_logprobs`` (the scorer's pass, unrolled, full vocabulary) in whichever mode is on."""
    import tensorflow as tf

    from generator.models.llama import forward
    from generator.models.llama.score import as_tf_weights

    if tf.executing_eagerly():
        return forward.next_token_logprobs(as_tf_weights(model), model.hparams, tokens, mask).numpy()
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:  # gpt-2-simple turned eager off earlier
        output = forward.next_token_logprobs(as_tf_weights(model), model.hparams, tokens, mask)
        session.run(tf.compat.v1.global_variables_initializer())
        return session.run(output)


def test_lora_starts_as_the_identity_and_the_loop_matches_the_reference_forward(tiny_gguf, tmp_path):
    from generator.models.llama.gguf_weights import load_llama_gguf
    from generator.models.llama.lora import initial_arrays
    from generator.models.llama.tokenizer import LlamaTokenizer
    from generator.train import TrainSettings

    model = load_llama_gguf(tiny_gguf)
    adapter = TrainSettings().adapter_record()
    fresh = initial_arrays(model, adapter, seed=3)
    assert all(not value.any() for name, value in fresh.items() if name.endswith("lora_b"))
    assert all(value.any() and np.abs(value).max() <= 1 / np.sqrt(value.shape[0])
               for name, value in fresh.items() if name.endswith("lora_a"))
    assert len(fresh) == 2 * model.hparams.n_layer * 7
    lines = chat.read_lines(ingested(tmp_path, llama_config(tmp_path, tiny_gguf), rows=12) / "train.txt")
    items = chat.chat_examples(lines, LlamaTokenizer(model.tokenizer_fields), model.hparams.n_ctx)
    batch = chat.pad_batch(items[:5], 0)
    adapted = tiny_network(tiny_gguf, adapter, fresh, frozen_dtype="float32").nll_sum(batch)
    base = tiny_network(tiny_gguf, None, {}).nll_sum(batch)
    assert adapted == base  # B = 0: the adapters add exactly nothing
    # The training loop (stacked weights, a while loop, reply positions only) against forward's own pass.
    tokens, mask, reply = batch
    logprobs = reference_logprobs(model, tokens, mask)
    expected = -logprobs[reply[:, 1:] > 0]
    assert base[1] == expected.size == sum(chat.reply_tokens(item) for item in items[:5])
    assert base[0] == pytest.approx(float(expected.sum()), rel=1e-5)


def test_training_lowers_the_loss_and_records_the_run(trained, tiny_gguf):
    from generator.models.llama.train_loop import held_out_loss

    config, ingest_dir, manifest = trained
    assert manifest["step"] == 6 and manifest["steps"] == 6 and not manifest["resumed"]
    curve = [loss for _, loss in manifest["loss_curve"]]
    assert [step for step, _ in manifest["loss_curve"]] == list(range(1, 7))
    assert np.mean(curve[-2:]) < np.mean(curve[:2])
    run_dir = Path(manifest["run_dir"])
    family = run.read_family(run_dir)
    assert family["adapter"] == {"kind": "lora", "rank": 8, "alpha": 16.0, "targets": list(run.LORA_TARGETS)}
    assert family["base"]["path"] == str(tiny_gguf)
    assert manifest["base_model"]["family"] == "llama" and manifest["base_model"]["sha256"] == family["base"]["sha256"]
    assert sorted(p.name for p in run_dir.glob("*.npz")) == ["model-6.npz", "optimizer-6.npz"]  # max_checkpoints 1
    # The held-out loss went down from the base's (the same measure on the untrained run).
    untrained = run_dir.parent / "untrained"
    run.write_family(untrained, tiny_gguf, family["base"]["sha256"], family["adapter"])
    assert manifest["val_loss"] < held_out_loss(untrained, ingest_dir / "val.txt", config.train.val_max_tokens)


def test_val_loss_is_the_mean_nll_per_reply_token(trained):
    from generator.models.llama.tokenizer import LlamaTokenizer

    config, ingest_dir, manifest = trained
    loaded = run.load_run(manifest["run_dir"])
    items = chat.chat_examples(chat.read_lines(ingest_dir / "val.txt"), LlamaTokenizer(loaded.model.tokenizer_fields),
                               loaded.model.hparams.n_ctx)
    items = chat.within_budget(items, config.train.val_max_tokens)
    total = count = 0.0
    for item in items:
        tokens = np.array([item.ids], np.int32)
        logprobs = reference_logprobs(loaded.model, tokens, np.ones_like(tokens))[0]
        total -= float(logprobs[item.context - 1:].sum())
        count += chat.reply_tokens(item)
    assert manifest["val_loss"] == pytest.approx(total / count, abs=2e-5)


def test_a_killed_training_resumes_to_the_same_arrays(tmp_path, tiny_gguf, monkeypatch):
    from generator.models.llama import trainer

    straight = llama_config(tmp_path / "straight", tiny_gguf, steps=7)
    expected = train_run(straight, ingested(tmp_path / "straight", straight))
    killed = llama_config(tmp_path / "killed", tiny_gguf, steps=7)
    ingest_dir = ingested(tmp_path / "killed", killed)
    original, calls = trainer.LlamaNetwork.train_step, []

    def dies_at_step_five(self, batch):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt("killed")  # after the save at step 3, before the one at 6
        return original(self, batch)

    monkeypatch.setattr(trainer.LlamaNetwork, "train_step", dies_at_step_five)
    with pytest.raises(KeyboardInterrupt):
        train_run(killed, ingest_dir)
    monkeypatch.setattr(trainer.LlamaNetwork, "train_step", original)
    run_dir = killed.paths.checkpoint_root / killed.train.run_name
    assert run.latest_step(run_dir) == 3
    resumed = train_run(killed, ingest_dir)
    assert resumed["resumed"] and resumed["step"] == 7 and resumed["start_step"] == 0 and resumed["steps"] == 7
    assert resumed["loss_curve"] == expected["loss_curve"] and resumed["val_loss"] == expected["val_loss"]
    ours, theirs = run.load_weights(run_dir), run.load_weights(Path(expected["run_dir"]))
    assert sorted(ours) == sorted(theirs)
    for name in ours:
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)


def test_full_fine_tune_trains_every_array(tmp_path, tiny_gguf):
    config = llama_config(tmp_path, tiny_gguf, adapter="full", steps=3, learning_rate=0.003)
    manifest = train_run(config, ingested(tmp_path, config))
    run_dir = Path(manifest["run_dir"])
    assert run.read_family(run_dir)["adapter"] == {"kind": "full"}
    from generator.models.llama.gguf_weights import load_llama_gguf

    base = run.flat_names(load_llama_gguf(tiny_gguf))
    saved = run.load_weights(run_dir)
    assert sorted(saved) == sorted(base)
    assert all(not np.array_equal(saved[name], base[name]) for name in ("embed", "blk0.wq", "blk1.w_down"))
    loaded = run.load_run(run_dir)
    np.testing.assert_array_equal(loaded.model.layers[1]["w_down"], saved["blk1.w_down"])
    assert np.isfinite(manifest["val_loss"]) and manifest["loss_curve"][-1][1] < manifest["loss_curve"][0][1]


def test_promote_releases_a_llama_run_that_generation_loads(trained, tmp_path):
    from generator import checkpoints

    config, _, manifest = trained
    root = tmp_path / "checkpoints"
    root.mkdir()
    release = checkpoints.promote(manifest["run_dir"], root, "llama", {"catalog_hash": manifest["catalog_hash"]})
    assert sorted(p.name for p in release.path.iterdir()) == ["counter", "family.json", "generation.json", "model-6.npz"]
    assert checkpoints.read_live(root, "llama").step == 6 == checkpoints.checkpoint_step(release.path)
    ours, theirs = run.load_run(release.path), run.load_run(manifest["run_dir"])
    assert ours.step == 6
    for index, layer in enumerate(ours.model.layers):
        for key in ("wq", "w_down"):
            np.testing.assert_array_equal(layer[key], theirs.model.layers[index][key])
    info = checkpoints.read_generation_info(release.path)
    assert info["max_tokens"] == manifest["max_tokens"] > 0
    assert set(info) == {"max_tokens", "conditions", "condition_counts", "seen_tokens", "examples", "titles"}
    assert ours.model.tokenizer_fields["tokens"][2] == "<|im_end|>" and 2 in info["seen_tokens"]
    assert 1 not in info["seen_tokens"]  # <|im_start|>: a control token no reply holds
    assert 0 < len(info["examples"]) <= checkpoints.FEW_SHOT_EXAMPLES
    lines = chat.read_lines(Path(trained[1]) / "train.txt")
    assert set(info["examples"]) <= set(lines) and info["examples"] == checkpoints.few_shot_examples(lines)
    assert checkpoints.resolve_run(root / "releases" / "llama", release.path.name) == release.path
    # A rejected night goes back to the live adapter.
    assert checkpoints.reset_run(root, "llama") == "live"
    assert run.latest_step(root / "llama") == 6


def test_few_shot_examples_are_stable_as_the_catalog_grows():
    from generator.checkpoints import few_shot_examples
    from generator.textformat import training_line

    lines = [training_line(f"Story number {i} about a baker.", "Movie", "Dramas").strip() for i in range(200)]
    chosen = few_shot_examples(lines, 10)
    assert len(chosen) == 10 and chosen == few_shot_examples(list(reversed(lines)), 10)
    grown = few_shot_examples(lines + [training_line(f"Another story {i}.", "Movie", "Dramas") for i in range(20)], 10)
    assert len(set(grown) & set(chosen)) >= 10 - sum(1 for line in grown if line not in lines)
    assert few_shot_examples(["not a training line"]) == []


def test_a_night_on_unchanged_data_does_not_retrain_and_a_changed_one_resumes_from_live(tmp_path, tiny_gguf):
    from generator import pipeline
    from generator.checkpoints import read_live

    config = llama_config(tmp_path / "work", tiny_gguf, steps=3, save_every=3)
    catalog = small_catalog(tmp_path / "a.csv")
    nights = ("2026-01-01", "2026-01-02", "2026-01-03")
    pipeline.step_ingest(config, nights[0], str(catalog))
    assert pipeline.step_should_train(config, nights[0])["train"]
    first = pipeline.step_train(config, nights[0])
    decision, live = pipeline.promote_night(config, nights[0])
    assert decision["promoted"] and live.step == 3 == first["step"]
    pipeline.step_ingest(config, nights[1], str(catalog))
    unchanged = pipeline.step_should_train(config, nights[1])
    assert not unchanged["train"] and "unchanged" in unchanged["reason"]
    pipeline.step_ingest(config, nights[2], str(small_catalog(tmp_path / "b.csv", start=20)))
    assert pipeline.step_should_train(config, nights[2])["train"]
    second = pipeline.step_train(config, nights[2])
    manifest = json.loads((config.paths.checkpoint_root / "nightly.manifest.json").read_text())
    assert second["step"] == 6 and manifest["start_step"] == 3  # on top of the live adapter
    decision, live = pipeline.promote_night(config, nights[2])
    assert decision["live_val_loss"] is not None and np.isfinite(decision["live_val_loss"])
    assert read_live(config.paths.checkpoint_root, "nightly").step == (6 if decision["promoted"] else 3)
    from generator.report import build_report

    model = build_report(config, nights[2])["model"]  # the model card's fields
    assert model["family"] == "llama" and model["adapter"]["kind"] == "lora"
    assert model["source"].startswith("tiny.gguf (sha256 ") and "LoRA rank 8, alpha 16, on 7 projections" in model["source"]


def test_a_missing_base_file_names_the_fetch_command(tmp_path, monkeypatch):
    from generator.base_model import ModelSettings, ensure_base_model
    from generator.models.llama.model_file import FETCH_COMMAND

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(UserError) as missing:
        ensure_base_model(tmp_path / "models", ModelSettings(family="llama"))
    assert missing.value.fix == FETCH_COMMAND and "SmolLM2-135M-Instruct" in missing.value.problem
    damaged = tmp_path / "cache" / "netflix-gallery" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b"GGUF not really")
    with pytest.raises(UserError, match="not the published") as changed:
        ensure_base_model(tmp_path / "models", ModelSettings(family="llama"))
    assert FETCH_COMMAND in changed.value.fix
    with pytest.raises(UserError, match="missing") as elsewhere:
        ensure_base_model(tmp_path / "models", ModelSettings(family="llama", gguf_path=str(tmp_path / "x.gguf")))
    assert "model.gguf_path" in elsewhere.value.fix


def test_a_run_of_another_family_or_adapter_is_refused(trained, tmp_path, tiny_gguf):
    config, ingest_dir, manifest = trained
    other = llama_config(Path(config.paths.workdir), tiny_gguf, lora_rank=4)
    with pytest.raises(UserError, match="trains adapter"):
        train_run(other, ingest_dir)
    gpt2_run = tmp_path / "checkpoints" / "nightly"
    gpt2_run.mkdir(parents=True)
    (gpt2_run / "hparams.json").write_text("{}")
    with pytest.raises(UserError, match="GPT-2 run"):
        train_run(llama_config(tmp_path, tiny_gguf), ingest_dir)


EAGER_OFF = """
import json, sys
import gpt_2_simple  # turns eager execution off for the whole process
import tensorflow as tf
assert not tf.executing_eagerly()
sys.path.insert(0, sys.argv[1])
from test_llama_train import llama_config, ingested, train_run
from pathlib import Path
work, gguf = Path(sys.argv[2]), Path(sys.argv[3])
config = llama_config(work, gguf, frozen_dtype="float32")
manifest = train_run(config, ingested(work, config))
print(json.dumps({key: manifest[key] for key in ("run_dir", "val_loss", "loss_curve")}))
"""


def test_training_works_where_gpt2_simple_turned_eager_off(tmp_path, tiny_gguf):
    """The same training in a graph of its own: float32 here, so both modes do the very same arithmetic
    (bfloat16's rounding depends on how each mode fuses its casts, and Adam amplifies that)."""
    done = subprocess.run([sys.executable, "-c", EAGER_OFF, str(ROOT / "tests"), str(tmp_path / "graph"),
                           str(tiny_gguf)], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    graph = json.loads(done.stdout.strip().splitlines()[-1])
    config = llama_config(tmp_path / "here", tiny_gguf, frozen_dtype="float32")
    here = train_run(config, ingested(tmp_path / "here", config))
    assert graph["val_loss"] == pytest.approx(here["val_loss"], abs=1e-4)
    assert [s for s, _ in graph["loss_curve"]] == [s for s, _ in here["loss_curve"]]
    np.testing.assert_allclose([l for _, l in graph["loss_curve"]], [l for _, l in here["loss_curve"]], atol=1e-4)
    ours, theirs = run.load_weights(graph["run_dir"]), run.load_weights(here["run_dir"])
    for name in ours:
        np.testing.assert_allclose(ours[name], theirs[name], atol=1e-4, err_msg=name)
