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
from .lora import network_weights
from .run import flat_names

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
                 learning_rate: float | None = None, adam: dict[str, np.ndarray] | None = None, threads: int = 0):
        from ...tf_runtime import import_tf
        from .score import set_threads

        set_threads(threads)
        tf = import_tf()
        self.hparams, self.adapter = model.hparams, adapter or {"kind": "none"}
        base = flat_names(model)
        frozen = {} if self.adapter["kind"] == "full" else base
        self.training = learning_rate is not None
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

    def _build(self, tf, frozen, arrays, adam, learning_rate) -> None:
        self.frozen = {name: tf.Variable(value, trainable=False, name=_tf_name(name)) for name, value in frozen.items()}
        self.trainable = {name: tf.Variable(value, name=_tf_name(name)) for name, value in arrays.items()}
        if self.training:
            self.slots = {key: tf.Variable(value, trainable=False, name=_tf_name(key)) for key, value in adam.items()}
            self.learning_rate = float(learning_rate)

    def _graph_mode(self, tf, frozen, arrays, adam, learning_rate, threads: int) -> None:
        """The same functions in a graph and session of their own (eager execution is off in this process)."""
        graph = tf.Graph()
        with graph.as_default():
            self._build(tf, frozen, arrays, adam, learning_rate)
            batch = [tf.compat.v1.placeholder(tf.int32, [None, None]) for _ in range(3)]
            total, count = self._nll(*batch)
            loss = self._train_step(*batch) if self.training else None
            config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=max(0, threads),
                                              inter_op_parallelism_threads=1 if threads > 0 else 0)
            session = tf.compat.v1.Session(graph=graph, config=config)
            session.run(tf.compat.v1.global_variables_initializer())
        graph.finalize()
        feed = lambda values: dict(zip(batch, values))  # noqa: E731
        self._step = lambda *values: float(session.run(loss, feed(values)))
        self._nll_sum = lambda *values: tuple(float(v) for v in session.run((total, count), feed(values)))
        self._read = lambda variables: session.run(dict(variables))
        self.session = session

    def _weights(self) -> dict:
        if self.adapter["kind"] == "none":
            return network_weights(self.frozen, {}, {"kind": "full"})
        return network_weights(self.frozen, self.trainable, self.adapter)

    def _nll(self, tokens, mask, reply):
        """(sum of -ln p over the batch's reply tokens, their count): token t+1 read from position t."""
        from ...tf_runtime import import_tf

        tf = import_tf()
        weights = self._weights()
        hidden = forward.hidden_states(weights, self.hparams, tokens, mask)[:, :-1]
        where = tf.where(reply[:, 1:] > 0)
        logits = tf.matmul(tf.gather_nd(hidden, where), forward.output_matrix(weights), transpose_b=True)
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
        return self._read(self.trainable)

    def adam_state(self) -> dict[str, np.ndarray]:
        return self._read(self.slots)

    def close(self) -> None:
        session = getattr(self, "session", None)
        if session is not None:
            session.close()


def _tf_name(name: str) -> str:
    return name.replace("/", "_").replace(".", "_")
