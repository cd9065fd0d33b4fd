"""Lazy TensorFlow / gpt-2-simple imports and session set-up, in one place.

Nothing here runs at import time, so the DAG file and the CLI's --help stay light.
"""

from __future__ import annotations

import os


def quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def import_tf():
    quiet_tensorflow()
    import tensorflow as tf

    return tf


def import_gpt2():
    quiet_tensorflow()
    import gpt_2_simple as gpt2

    return gpt2


def new_session(threads: int = 0):
    """A fresh graph and gpt-2-simple session (``threads`` 0 = all cores)."""
    tf = import_tf()
    gpt2 = import_gpt2()
    tf.compat.v1.reset_default_graph()
    return gpt2.start_tf_sess(threads=threads if threads > 0 else -1)

