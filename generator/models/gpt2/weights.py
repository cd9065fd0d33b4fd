"""GPT-2's base-model files in gpt-2-simple's layout: its shape, its tokenizer, fresh or downloaded weights.

A GPT-2 base model is the folder ``<models_dir>/<name>/``::

    encoder.json  vocab.bpe  hparams.json  checkpoint  model.ckpt.{index,data-*}

which ``gpt2.finetune`` reads. :mod:`generator.base_model` (shared by every family)
decides when a base model is made, stages and locks it and writes its manifest; this
module makes GPT-2's files: a byte-level BPE trained on the catalog (HF ``tokenizers``)
plus freshly initialised weights (offline), or ``gpt2.download_gpt2``'s.
"""

from __future__ import annotations

import json
from pathlib import Path

from ...artifacts import atomic_write_json, atomic_write_text
from ...checkpoints import read_hparams

MODEL_FILES = ("encoder.json", "vocab.bpe", "hparams.json", "checkpoint")


def is_complete(model_dir: Path) -> bool:
    return all((model_dir / name).is_file() for name in MODEL_FILES)


def gpt2_hparams(values: dict):
    """gpt-2-simple's HParams object for a shape (imports gpt-2-simple, hence TensorFlow)."""
    from gpt_2_simple.src import model as gpt2_model

    hparams = gpt2_model.default_hparams()
    hparams.override_from_dict(values)
    return hparams


def load_hparams(model_dir: str | Path):
    """A run's or base model's ``hparams.json`` as gpt-2-simple's HParams."""
    return gpt2_hparams(read_hparams(model_dir))


def _corpus_lines(corpus_path: Path):
    with open(corpus_path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield line


def train_tokenizer(corpus_path: str | Path, vocab_size: int) -> tuple[dict, list[tuple[str, str]]]:
    """Train a GPT-2 style byte-level BPE; returns (encoder, merges) in gpt-2-simple's format.

    The markers <|startoftext|>/<|endoftext|> are deliberately *not* special
    tokens: gpt-2-simple's encoder has no special-token handling, so they are
    ordinary text split by GPT-2's regex (``<|``, ``endoftext``, ``|>``) and the
    BPE learns cheap tokens for those pieces.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus_lines(Path(corpus_path)), trainer=trainer)
    state = json.loads(tokenizer.to_str())["model"]
    encoder = dict(state["vocab"])
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    # gpt-2-simple looks the id of <|endoftext|> up when sampling without a prefix.
    encoder.setdefault("<|endoftext|>", len(encoder))
    return encoder, merges


def pad_encoder(encoder: dict, n_vocab: int) -> None:
    """Add placeholder tokens until ``encoder`` has ``n_vocab`` entries.

    A placeholder's string (``<|pad17|>``) is no merge of the BPE, so encoding
    never produces it: the model only gets the real vocabulary's exact shape.
    """
    next_id = max(encoder.values(), default=-1) + 1
    while len(encoder) < n_vocab:
        encoder.setdefault(f"<|pad{next_id}|>", next_id)
        next_id += 1


def write_fresh_model(folder: Path, shape: dict, corpus_path: str | Path, *, pad_vocab: bool, seed: int
                      ) -> tuple[dict, int]:
    """Write a tokenizer trained on ``corpus_path`` and fresh GPT-2 weights of ``shape`` into ``folder``.

    ``shape`` is the hparams asked for (its ``n_vocab`` is the BPE's size plus one, the
    size it pads to with ``pad_vocab``). Returns (the model's hparams, its parameter count).
    """
    from ...tf_runtime import import_tf

    encoder, merges = train_tokenizer(corpus_path, shape["n_vocab"] - 1)
    if pad_vocab:
        pad_encoder(encoder, shape["n_vocab"])
    hparams = {**shape, "n_vocab": len(encoder)}
    atomic_write_json(folder / "encoder.json", encoder)
    atomic_write_text(folder / "vocab.bpe", "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    atomic_write_json(folder / "hparams.json", hparams)

    tf = import_tf()
    from gpt_2_simple.src import model as gpt2_model

    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(seed)
        context = tf.compat.v1.placeholder(tf.int32, [1, None])
        gpt2_model.model(hparams=gpt2_hparams(hparams), X=context)
        variables = [v for v in tf.compat.v1.trainable_variables() if "model" in v.name]
        saver = tf.compat.v1.train.Saver(var_list=variables)
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            saver.save(sess, str(folder / "model.ckpt"), write_meta_graph=False)
    # TF writes absolute paths into the "checkpoint" state file; make it relative so the folder can move.
    atomic_write_text(folder / "checkpoint",
                      'model_checkpoint_path: "model.ckpt"\nall_model_checkpoint_paths: "model.ckpt"\n')
    return hparams, sum(int(v.shape.num_elements()) for v in variables)


def download(folder: Path, name: str) -> Path:
    """A pretrained GPT-2 (124M, 355M, ...) downloaded by gpt-2-simple into ``folder/<name>``."""
    from ...console import library_output
    from ...tf_runtime import import_gpt2

    with library_output():  # its per-file download bars are chatter in a night's log
        import_gpt2().download_gpt2(model_dir=str(folder), model_name=name)
    if not is_complete(folder / name):
        raise OSError("incomplete download")
    return folder / name
