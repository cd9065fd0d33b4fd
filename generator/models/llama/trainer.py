"""A Llama in TensorFlow with its trainable arrays and their Adam state: one training step, the held-out loss.

The loss is the mean negative log-likelihood per reply token: only reply positions reach the
output projection (a gather of their hidden states first), so the vocabulary-wide matmul is paid
for the tokens that carry loss, not for the prompt's. Adam is TensorFlow's own kernel
(``ResourceApplyAdam``, what ``tf.compat.v1.train.AdamOptimizer`` runs) over slots this class owns,
so its state (``m``, ``v`` per array and the step count) can be read out and handed back exactly:
a training resumed from a save continues bit for bit (:mod:`train_loop`).

gpt-2-simple turns eager execution off for the whole process when it is imported, so the network is
built either as ``tf.function``s (eager on) or in a graph and session of its own (eager off), from
the same functions; ``LlamaNetwork`` is used the same way in both.
"""

from __future__ import annotations

import numpy as np

from . import forward
from .lora import layer_weights, stacked, unstacked
from .run import LORA_TARGETS, flat_names

BETA1, BETA2, EPSILON = 0.9, 0.999, 1e-8


def fresh_adam(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    state = {f"{slot}/{name}": np.zeros_like(value) for name, value in arrays.items() for slot in ("m", "v")}
    return {**state, "t": np.zeros((), np.float32)}


class LlamaNetwork:
    """``model`` (a ``LlamaFile``) with ``arrays`` trainable under ``adapter`` (None: nothing trains).

    ``learning_rate`` None builds the held-out loss only; ``adam`` is the optimizer state to continue
    from (:meth:`adam_state`), fresh when None.
    """

    def __init__(self, model, adapter: dict | None, arrays: dict[str, np.ndarray], *,
                 learning_rate: float | None = None, adam: dict[str, np.ndarray] | None = None, threads: int = 0,
                 frozen_dtype: str = "float32"):
        from ...tf_runtime import import_tf
        from .score import set_threads

        set_threads(threads)
        tf = import_tf()
        self.hparams, self.adapter = model.hparams, adapter or {"kind": "none"}
        n_layer = model.hparams.n_layer
        frozen = {} if self.adapter["kind"] == "full" else stacked(flat_names(model), n_layer)
        arrays = stacked(arrays, n_layer)
        self.training = learning_rate is not None
        self.narrow = {name for name in frozen if name in ("embed", "output") or name.split("/")[-1] in LORA_TARGETS}
        self.frozen_dtype = frozen_dtype
        if self.training:
            adam = fresh_adam(arrays) if adam is None else adam
        if tf.executing_eagerly():
            self._build(tf, frozen, arrays, adam, learning_rate)
            spec = [tf.TensorSpec([None, None], tf.int32)] * 3
            if self.training:
                step = tf.function(self._train_step, input_signature=spec, autograph=False)
                self._step = lambda *batch: float(step(*batch))
            nll = tf.function(self._nll, input_signature=spec, autograph=False)
            self._nll_sum = lambda *batch: tuple(float(value) for value in nll(*batch))
            self._read = lambda variables: {name: value.numpy() for name, value in variables.items()}
        else:
            self._graph_mode(tf, frozen, arrays, adam, learning_rate, threads)

    def _build(self, tf, frozen, arrays, adam, learning_rate, feed: dict | None = None) -> None:
        """The variables, from their arrays; in a graph (``feed`` given) each starts from a placeholder fed once
        at initialisation, so half a gigabyte of weights never becomes constants in the graph."""
        def variable(value, name, trainable, dtype=None):
            if feed is None:
                initial = value
            else:
                initial = tf.compat.v1.placeholder(tf.as_dtype(value.dtype), value.shape, name=_tf_name(name) + "_value")
                feed[initial] = value
            if dtype is not None and dtype != "float32":
                initial = tf.cast(initial, dtype)
            return tf.Variable(initial, trainable=trainable, name=_tf_name(name))

        self.frozen = {name: variable(value, name, False, self.frozen_dtype if name in self.narrow else None)
                       for name, value in frozen.items()}
        self.trainable = {name: variable(value, name, True) for name, value in arrays.items()}
        if self.training:
            self.slots = {key: variable(value, key, False) for key, value in adam.items()}
            self.learning_rate = float(learning_rate)

    def _graph_mode(self, tf, frozen, arrays, adam, learning_rate, threads: int) -> None:
        """The same functions in a graph and session of their own (eager execution is off in this process)."""
        graph, initial = tf.Graph(), {}
        with graph.as_default():
            self._build(tf, frozen, arrays, adam, learning_rate, feed=initial)
            batch = [tf.compat.v1.placeholder(tf.int32, [None, None]) for _ in range(3)]
            total, count = self._nll(*batch)
            loss = self._train_step(*batch) if self.training else None
            config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=max(0, threads),
                                              inter_op_parallelism_threads=1 if threads > 0 else 0)
            session = tf.compat.v1.Session(graph=graph, config=config)
            session.run(tf.compat.v1.global_variables_initializer(), initial)
        graph.finalize()
        del initial
        feed = lambda values: dict(zip(batch, values))  # noqa: E731
        self._step = lambda *values: float(session.run(loss, feed(values)))
        self._nll_sum = lambda *values: tuple(float(v) for v in session.run((total, count), feed(values)))
        self._read = lambda variables: session.run(dict(variables))
        self.session = session

    def _hidden_states(self, tf, frozen: dict, trainable: dict, tokens, mask):
        """``forward.hidden_states`` with the blocks as one ``tf.while_loop`` over the stacked weights."""
        hp = self.hparams
        cos, sin = forward.rope_angles(forward.positions_of(mask), hp.head_dim, hp.rope_base)
        bias = forward.attention_bias(mask)

        def body(index, x):
            layer = layer_weights(frozen, trainable, self.adapter, index)
            return index + 1, forward.block(x, layer, hp, cos, sin, bias)

        x = tf.cast(tf.gather(self._whole("embed", frozen, trainable), tokens), tf.float32)
        _, x = tf.while_loop(lambda index, _: index < hp.n_layer, body, [tf.constant(0), x],
                             parallel_iterations=1)
        return forward.rms_norm(x, self._whole("output_norm", frozen, trainable), hp.rms_eps)

    def _whole(self, name: str, frozen: dict, trainable: dict):
        """A whole array (not per layer): the trainable one in a full fine-tune, else the frozen one."""
        return trainable[name] if name in trainable else frozen.get(name)

    def _nll(self, tokens, mask, reply):
        """(sum of -ln p over the batch's reply tokens, their count): token t+1 read from position t."""
        from ...tf_runtime import import_tf

        tf = import_tf()
        # Values read once, outside the loop: its body slices them, and the gradients reach the variables.
        frozen = {name: tf.convert_to_tensor(value) for name, value in self.frozen.items()}
        trainable = {name: tf.convert_to_tensor(value) for name, value in self.trainable.items()}
        hidden = self._hidden_states(tf, frozen, trainable, tokens, mask)[:, :-1]
        output = self._whole("output", frozen, trainable)
        table = self._whole("embed", frozen, trainable) if output is None else output
        where = tf.where(reply[:, 1:] > 0)
        logits = tf.cast(tf.matmul(tf.cast(tf.gather_nd(hidden, where), table.dtype), table, transpose_b=True),
                         tf.float32)
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.gather_nd(tokens[:, 1:], where),
                                                                logits=logits)
        return tf.reduce_sum(losses), tf.cast(tf.size(losses), tf.float32)

    def _train_step(self, tokens, mask, reply):
        """One Adam step on the batch's mean reply-token loss; returns that loss (before the step)."""
        from ...tf_runtime import import_tf

        tf = import_tf()
        names = sorted(self.trainable)
        with tf.GradientTape() as tape:
            total, count = self._nll(tokens, mask, reply)
            loss = total / tf.maximum(count, 1.0)
        grads = tape.gradient(loss, [self.trainable[name] for name in names])
        t = self.slots["t"] + 1.0
        updates = [tf.raw_ops.ResourceApplyAdam(
            var=self.trainable[name].handle, m=self.slots[f"m/{name}"].handle, v=self.slots[f"v/{name}"].handle,
            beta1_power=BETA1 ** t, beta2_power=BETA2 ** t, lr=self.learning_rate, beta1=BETA1, beta2=BETA2,
            epsilon=EPSILON, grad=tf.convert_to_tensor(grad)) for name, grad in zip(names, grads)]
        with tf.control_dependencies(updates):
            counted = self.slots["t"].assign_add(1.0)
        with tf.control_dependencies([counted]):
            return tf.identity(loss)

    def train_step(self, batch) -> float:
        return self._step(*batch)

    def nll_sum(self, batch) -> tuple[float, float]:
        return self._nll_sum(*batch)

    def arrays(self) -> dict[str, np.ndarray]:
        """The trainable arrays under :mod:`run`'s flat names (``blk<i>.<proj>.lora_a`` ...)."""
        return unstacked(self._read(self.trainable))

    def adam_state(self) -> dict[str, np.ndarray]:
        """Adam's slots by the stacked names they are kept under (``m/layers/wq.lora_a``, ``t``): training's own."""
        return self._read(self.slots)

    def close(self) -> None:
        session = getattr(self, "session", None)
        if session is not None:
            session.close()


def _tf_name(name: str) -> str:
    return name.replace("/", "_").replace(".", "_")
