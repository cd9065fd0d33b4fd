"""The reader: per-token log-probabilities of texts under a Llama GGUF model, in TensorFlow.

A text is read after a fixed prefix ("Netflix description: ") and after BOS when the file asks for
one (SmolLM2 does not). The prefix and the text are tokenized together, as llama.cpp would see them;
the text's own tokens are those after the longest run of leading tokens it shares with the prefix
tokenized alone (so the prefix's trailing space joins the text's first word, " A", as in one string).

Texts are sorted by length and scored in batches of ``batch_size`` padded to a multiple of
``LENGTH_STEP``; the compiled function takes any (batch, time) shape, so nothing retraces per batch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import UserError
from .model_file import file_sha256

LENGTH_STEP = 8


def set_threads(threads: int) -> None:
    """Pin TensorFlow's thread pools (only possible before TensorFlow first runs anything)."""
    if threads <= 0:
        return
    from ...tf_runtime import import_tf

    tf = import_tf()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # TensorFlow already started in this process: it keeps the pools it has


PROJECTIONS = ("wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down")


def numerics_tag(matmul_dtype: str) -> str:
    """What a score cache keys on beside the model file: the path's rounding moves a score's third decimal.

    ``-bfloat16-v2``: the projections and the vocabulary's matmul in bfloat16 (v1 kept the latter float32).
    """
    return "" if matmul_dtype == "float32" else f"-{matmul_dtype}-v2"


def as_tf_weights(model, matmul_dtype: str = "float32") -> dict:
    """The GGUF's numpy arrays as frozen TensorFlow variables, in ``forward``'s layout.

    ``matmul_dtype = "bfloat16"`` keeps the blocks' projections in bfloat16 (``lora.NarrowProjection``:
    float32 in and out), where a CPU with bfloat16 matrix units multiplies several times faster;
    norms, the embedding and the output matrix stay float32, with a bfloat16 copy of the output matrix
    for the log-normaliser (``output_narrow``).
    """
    from ...tf_runtime import import_tf
    from .lora import NarrowProjection

    tf = import_tf()

    def var(value, name):
        return tf.Variable(value, trainable=False, name=name)

    def block_weight(key, value, name):
        if matmul_dtype == "bfloat16" and key in PROJECTIONS:
            return NarrowProjection(tf.Variable(tf.cast(value, tf.bfloat16), trainable=False, name=name))
        return var(value, name)

    weights = {"embed": var(model.embed, "embed"), "output_norm": var(model.output_norm, "output_norm"),
               "layers": [{key: block_weight(key, value, f"blk{i}_{key}") for key, value in layer.items()}
                          for i, layer in enumerate(model.layers)]}
    if model.output is not None:
        weights["output"] = var(model.output, "output")
    if matmul_dtype == "bfloat16":  # the log-normaliser's matmul (forward.next_token_logprobs)
        table = model.embed if model.output is None else model.output
        weights["output_narrow"] = NarrowProjection(tf.Variable(tf.cast(table.T, tf.bfloat16), trainable=False,
                                                                name="output_narrow"))
    return weights


class LlamaScorer:
    def __init__(self, gguf_path, threads: int = 0, batch_size: int = 16, matmul_dtype: str = "float32"):
        from ...tf_runtime import import_tf
        from . import forward
        from .gguf_weights import load_llama_gguf
        from .tokenizer import LlamaTokenizer

        set_threads(threads)
        tf = import_tf()
        self.path = Path(gguf_path)
        if not self.path.is_file():
            raise UserError(f"model file {self.path} not found", "python -m generator fetch-model")
        self.digest = file_sha256(self.path)
        self.batch_size = max(1, int(batch_size))
        self.matmul_dtype = matmul_dtype
        model = load_llama_gguf(self.path)
        self.hparams = model.hparams
        self.tokenizer = LlamaTokenizer(model.tokenizer_fields)
        self.pad_id = int(self.tokenizer.eos_id or 0)
        if tf.executing_eagerly():
            self.weights = as_tf_weights(model, self.matmul_dtype)
            spec = tf.TensorSpec([None, None], tf.int32)
            compiled = tf.function(
                lambda tokens, mask: forward.next_token_logprobs(self.weights, self.hparams, tokens, mask),
                input_signature=[spec, spec], autograph=False)  # plain graph code, as _graph_mode builds it
            self._next_token_logprobs = lambda tokens, mask: compiled(tokens, mask).numpy()
        else:
            self._next_token_logprobs = self._graph_mode(tf, forward, model)
        del model

    def _graph_mode(self, tf, forward, model):
        """The same network in a graph and session of its own: gpt-2-simple turns eager execution off for
        the whole process when it is imported, and a night (or a test session) may have imported it first."""
        graph = tf.Graph()
        with graph.as_default():
            self.weights = as_tf_weights(model, self.matmul_dtype)
            tokens = tf.compat.v1.placeholder(tf.int32, [None, None])
            mask = tf.compat.v1.placeholder(tf.int32, [None, None])
            output = forward.next_token_logprobs(self.weights, self.hparams, tokens, mask)
            session = tf.compat.v1.Session(graph=graph)
            session.run(tf.compat.v1.global_variables_initializer())
        return lambda ids, valid: session.run(output, {tokens: ids, mask: valid})

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text)

    def split(self, texts: list[str], prefix: str) -> list[tuple[list[int], int]]:
        """(token ids, number of context tokens before the text's own) for each text."""
        bos = self.tokenizer.bos_ids
        prefix_ids = self.tokenizer.encode(prefix)
        rows = []
        for ids in self.tokenizer.encode_batch([prefix + text for text in texts]):
            shared = 0
            while shared < min(len(prefix_ids), len(ids)) and ids[shared] == prefix_ids[shared]:
                shared += 1
            context = len(bos) + shared
            if context == 0:
                raise UserError("nothing to read a text's first token after (no prefix, and the model adds no BOS)",
                                "pass a non-empty prefix")
            rows.append(((bos + ids)[: self.hparams.n_ctx], context))
        return rows

    def token_logprobs(self, texts: list[str], prefix: str = "Netflix description: ") -> list[np.ndarray]:
        """For each text, ln p(token | prefix, earlier tokens) of each of the text's own tokens."""
        rows = self.split(list(texts), prefix)
        results: list[np.ndarray] = [np.zeros(0, np.float32)] * len(rows)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
        for start in range(0, len(order), self.batch_size):
            chosen = order[start:start + self.batch_size]
            longest = max(len(rows[i][0]) for i in chosen)
            width = max(2, -(-longest // LENGTH_STEP) * LENGTH_STEP)
            tokens = np.full((len(chosen), width), self.pad_id, np.int32)
            mask = np.zeros((len(chosen), width), np.int32)
            for slot, index in enumerate(chosen):
                ids = rows[index][0]
                tokens[slot, :len(ids)] = ids
                mask[slot, :len(ids)] = 1
            logprobs = self._next_token_logprobs(tokens, mask)
            for slot, index in enumerate(chosen):
                ids, context = rows[index]
                # logprobs[:, t] is token t + 1's: the text's tokens start at index ``context``.
                results[index] = logprobs[slot, context - 1:len(ids) - 1].astype(np.float32)
        return results
