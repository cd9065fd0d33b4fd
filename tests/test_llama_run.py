"""The Llama run layout: family record, atomic saves, LoRA folded into the base, a changed base refused."""

import numpy as np
import pytest

from generator.errors import UserError
from generator.models.llama import run
from generator.models.llama.gguf_weights import load_llama_gguf
from generator.models.llama.model_file import file_sha256
from llama_fixture import write_tiny_llama


@pytest.fixture()
def tiny_gguf(tmp_path):
    path = tmp_path / "tiny.gguf"
    write_tiny_llama(path)
    return path


def test_lora_step_is_folded_into_the_base(tmp_path, tiny_gguf):
    run_dir = tmp_path / "run"
    adapter = {"kind": "lora", "rank": 2, "alpha": 4, "targets": ["wq", "w_up"]}
    run.write_family(run_dir, tiny_gguf, file_sha256(tiny_gguf), adapter)
    base = load_llama_gguf(tiny_gguf)
    rng = np.random.default_rng(0)
    a = rng.normal(size=(base.hparams.n_embd, 2)).astype(np.float32)
    b = rng.normal(size=(2, base.hparams.n_embd)).astype(np.float32)
    run.save_weights(run_dir, 5, {"blk1.wq.lora_a": a, "blk1.wq.lora_b": b})
    run.save_weights(run_dir, 10, {"blk1.wq.lora_a": a, "blk1.wq.lora_b": 2 * b})
    run.save_weights(run_dir, 15, {"blk1.wq.lora_a": a, "blk1.wq.lora_b": 3 * b})
    assert run.saved_steps(run_dir) == [10, 15] and run.latest_step(run_dir) == 15
    loaded = run.load_run(run_dir)
    assert loaded.step == 15
    np.testing.assert_allclose(loaded.model.layers[1]["wq"], base.layers[1]["wq"] + 2.0 * (a @ (3 * b)), rtol=1e-5)
    np.testing.assert_array_equal(loaded.model.layers[0]["wq"], base.layers[0]["wq"])
    untrained = run.load_run(run_dir, step=0)
    np.testing.assert_array_equal(untrained.model.layers[1]["wq"], base.layers[1]["wq"])


def test_a_counter_naming_missing_weights_falls_back_to_the_newest_save(tmp_path, tiny_gguf):
    run_dir = tmp_path / "run"
    run.write_family(run_dir, tiny_gguf, file_sha256(tiny_gguf), {"kind": "full"})
    run.save_weights(run_dir, 3, {"output_norm": np.ones(32, np.float32)})
    (run_dir / "counter").write_text("9\n")
    assert run.latest_step(run_dir) == 3
    np.testing.assert_array_equal(run.load_run(run_dir).model.output_norm, np.ones(32, np.float32))


def test_a_changed_base_file_is_refused(tmp_path, tiny_gguf):
    run_dir = tmp_path / "run"
    run.write_family(run_dir, tiny_gguf, "0" * 64, None)
    with pytest.raises(UserError, match="changed since the run was trained"):
        run.load_run(run_dir)


def test_chat_rendering_of_a_training_line_and_its_prompt():
    from generator.textformat import chat_prompt, chat_training_text, generation_prefix, training_line

    line = training_line("A widow opens a bakery.", "Movie", "Dramas")
    prompt = chat_prompt(generation_prefix("[Movie] [Dramas]"))
    text = chat_training_text(line)
    assert text == prompt + "A widow opens a bakery.<|im_end|>"
    assert "film in the genre Dramas" in prompt and prompt.endswith("<|im_start|>assistant\n")
    assert "film or TV series." in chat_prompt(generation_prefix())
    assert chat_training_text("not a line") is None
