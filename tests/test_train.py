"""Base model bootstrap, fine-tuning, resume after SIGKILL, validation loss, releases."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from generator.base_model import ModelSettings, bootstrap, ensure_base_model
from generator.checkpoints import checkpoint_step, gate, promote, read_live, restore_run_from_live
from generator.models.gpt2.loss import evaluate_loss
from generator.errors import UserError
from generator.ingest import IngestSettings, ingest
from generator.train import train

from conftest import ROOT, SAMPLE_CATALOG, assert_clean_error, run_cli


def test_bootstrapped_model_is_in_gpt2_simple_layout_and_its_encoder_agrees_with_hf(tmp_path, sample_catalog):
    from gpt_2_simple.src import encoder as gpt2_encoder
    from tokenizers import Tokenizer, models, pre_tokenizers

    ingest(str(sample_catalog), tmp_path / "ingest", IngestSettings())
    settings = ModelSettings(name="t", vocab_size=400, n_embd=32, n_head=2, n_layer=1)
    manifest = bootstrap(tmp_path / "models", settings, tmp_path / "ingest" / "train.txt")
    model_dir = tmp_path / "models" / "t"
    for name in ("encoder.json", "vocab.bpe", "hparams.json", "checkpoint", "model.ckpt.index"):
        assert (model_dir / name).is_file(), name
    hparams = json.loads((model_dir / "hparams.json").read_text())
    assert hparams["n_ctx"] == 1024 and hparams["n_layer"] == 1 and hparams["n_vocab"] == manifest["hparams"]["n_vocab"]

    # gpt-2-simple's own encoder and HF's BPE built from the same files must tokenise identically.
    enc = gpt2_encoder.get_encoder(str(model_dir))
    hf = Tokenizer(models.BPE.from_file(str(model_dir / "encoder.json"), str(model_dir / "vocab.bpe")))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    texts = (tmp_path / "ingest" / "train.txt").read_text().splitlines()[:200] + ["Zoë’s café — “quoted” 123 ✨"]
    for text in texts:
        ids = enc.encode(text)
        assert ids == hf.encode(text).ids
        assert enc.decode(ids) == text
    # The markers are plain text: a few tokens each, not special symbols.
    assert len(enc.encode("<|endoftext|>")) > 1

    # Reused as is on the next call: a base model never changes under its checkpoints.
    before = (model_dir / "encoder.json").read_bytes()
    assert ensure_base_model(tmp_path / "models", settings)["name"] == "t"
    assert (model_dir / "encoder.json").read_bytes() == before


def test_missing_pretrained_model_without_network_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="models/124M|could not download|not found"):
        ensure_base_model(tmp_path / "models", ModelSettings(name="124M", source="pretrained", download=False))


def test_train_reports_losses_and_continues_on_the_next_night(trained_run, tmp_path):
    config, ingest_dir, checkpoint_root = trained_run
    manifest = json.loads((checkpoint_root / f"{config.train.run_name}.manifest.json").read_text())
    assert manifest["step"] == config.train.steps and manifest["steps"] == config.train.steps
    assert manifest["val_loss"] > 0 and manifest["train_loss"] > 0
    assert manifest["loss_curve"][0][0] == 1 and manifest["loss_curve"][-1][0] == config.train.steps
    # Learning happened: later losses are lower than the first ones.
    losses = [loss for _, loss in manifest["loss_curve"]]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    assert json.loads((checkpoint_root / config.train.run_name / "generation.json").read_text())["max_tokens"] > 10


def test_second_night_adds_steps_on_top(tmp_path, make_config, sample_catalog):
    config = make_config(train={"steps": 4, "save_every": 2})
    ingest(str(sample_catalog), tmp_path / "ingest", config.ingest)
    root, models = config.paths.checkpoint_root, config.paths.models_root
    first = train(tmp_path / "ingest", root, models, config.model, config.train)
    second = train(tmp_path / "ingest", root, models, config.model, config.train)
    assert (first["step"], second["start_step"], second["step"]) == (4, 4, 8)


def test_training_killed_partway_resumes_from_its_last_checkpoint(tmp_path, sample_catalog):
    """SIGKILL mid-training, then the same command finishes the night's target from the saved step."""
    work = tmp_path / "work"
    assert run_cli("ingest", "--catalog", str(sample_catalog), "--out", str(work / "ingest")).returncode == 0
    env = {"GENERATOR_TRAIN__SAVE_EVERY": "5"}
    args = ["train", "--profile", "test", "--ingest", str(work / "ingest"), "--checkpoint-dir", str(work / "ckpt"),
            "--models-dir", str(work / "models"), "--steps", "400"]
    process = subprocess.Popen([sys.executable, "-m", "generator", *args], cwd=ROOT,
                               env={**os.environ, **env, "TF_CPP_MIN_LOG_LEVEL": "3"},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    run_dir = work / "ckpt" / "nightly"
    deadline = time.monotonic() + 300
    while checkpoint_step(run_dir) < 10 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = checkpoint_step(run_dir)
    assert 10 <= killed_at < 400, f"expected a kill mid-training, checkpoint at {killed_at}"

    # A reader of the run at this moment gets a complete, loadable checkpoint.
    assert evaluate_loss(run_dir, work / "ingest" / "val.txt", 500) > 0

    result = run_cli(*args, env={"GENERATOR_TRAIN__SAVE_EVERY": "100"})
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = json.loads((work / "ckpt" / "nightly.manifest.json").read_text())
    assert manifest["resumed"] is True
    assert manifest["start_step"] == 0 and manifest["step"] == 400
    assert manifest["steps"] == 400  # the night's target, not 400 more


def test_promotion_gate_and_restore(trained_run, tmp_path):
    import shutil

    config, ingest_dir, checkpoint_root = trained_run
    root = tmp_path / "ckpt"
    shutil.copytree(checkpoint_root, root)
    run_dir = root / config.train.run_name
    live = promote(run_dir, root, config.train.run_name, {"catalog_hash": "abc", "val_loss": 5.0})
    assert read_live(root, config.train.run_name) == live
    release = live.path
    assert checkpoint_step(release) == config.train.steps
    # The release is self-contained and relocatable: it evaluates on its own.
    assert evaluate_loss(release, ingest_dir / "val.txt", 500) > 0

    assert gate(5.0, None, 0.02)[0] and gate(5.05, 5.0, 0.02)[0]
    ok, reason = gate(5.2, 5.0, 0.02)
    assert not ok and "regressed" in reason

    # A rejected candidate: the working run is reset to the live weights.
    (run_dir / "counter").write_text("999\n")
    assert restore_run_from_live(root, config.train.run_name)
    assert checkpoint_step(run_dir) == config.train.steps
    assert (run_dir / "counter").read_text().strip() == str(config.train.steps)


def test_train_cli_without_ingest_is_a_clear_error(tmp_path):
    result = run_cli("train", "--ingest", str(tmp_path / "nope"), "--checkpoint-dir", str(tmp_path / "c"))
    assert_clean_error(result, "no manifest", "ingest")


def test_unknown_profile_on_train_is_a_clear_error(tmp_path):
    result = run_cli("train", "--profile", "gigantic", "--ingest", str(tmp_path), "--checkpoint-dir", str(tmp_path))
    assert_clean_error(result, "unknown profile")
