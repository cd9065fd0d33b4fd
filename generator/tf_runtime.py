"""Lazy TensorFlow / gpt-2-simple imports and session set-up, in one place.

Nothing here runs at import time, so the DAG file and the CLI's --help stay light.

XLA's persistent compilation cache (:func:`use_compile_cache`): the sampler's
decoding loop is compiled by XLA, about a second per shape and setting, paid
again by every process. TensorFlow 2.21 saves and reloads compiled executables
when the XLA flag ``--tf_xla_persistent_cache_directory`` is in ``TF_XLA_FLAGS``;
TensorFlow reads those flags once, so the variable is set before TensorFlow is
first imported. Each entry's file name is a fingerprint of the computation
(the loop's HLO: the model's shape and every sampling setting baked into it)
and of its argument signature, and entries are checked strictly on load, so a
changed model or setting compiles and saves a new entry instead of reusing a
stale one. The directory is per TensorFlow version (an executable of another
build is not loaded).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

log = logging.getLogger(__name__)

CACHE_FLAG = "--tf_xla_persistent_cache_directory"


def quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def compile_cache_dir(root: str | Path) -> Path:
    """The cache directory for this TensorFlow build under ``root``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        build = version("tensorflow")
    except PackageNotFoundError:
        build = "unknown"
    return Path(root) / f"tensorflow-{build}"


def use_compile_cache(root: str | Path | None) -> Path | None:
    """Save and reuse XLA's compiled programs under ``root`` (None or "": off); returns the directory used.

    Must run before TensorFlow is imported; afterwards the flags are read and
    a different directory is ignored (logged), the first one staying in use.
    """
    if not root:
        return None
    directory = compile_cache_dir(root).absolute()
    flags = os.environ.get("TF_XLA_FLAGS", "").split()
    current = next((f.partition("=")[2] for f in flags if f.startswith(CACHE_FLAG + "=")), None)
    if current is not None:
        if current != str(directory):
            log.info("XLA compile cache stays %s (TF_XLA_FLAGS already names it)", current)
        return Path(current)
    if "tensorflow" in sys.modules:
        log.info("XLA compile cache off in this process: TensorFlow was imported before it was set")
        return None
    directory.mkdir(parents=True, exist_ok=True)
    os.environ["TF_XLA_FLAGS"] = " ".join(flags + [f"{CACHE_FLAG}={directory}"])
    return directory


def use_workdir_compile_cache(config) -> Path | None:
    """:func:`use_compile_cache` at ``generate.compile_cache`` under the workdir ("" = off)."""
    setting = config.generate.compile_cache
    return use_compile_cache(config.paths.resolve(setting) if setting else None)


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


class stable_function_names:
    """Name the functions traced in the block from ``seed``, whatever the process traced before.

    TensorFlow names each traced function after a process-wide counter, and the
    names reach the compiled program, so XLA's persistent cache would miss
    whenever a process traced other functions first (a night trains before it
    generates). In the block the counter restarts at a base drawn from ``seed``,
    far above the process's own count. Names are registered process-wide, and a
    name may only be registered again with the same definition: ``seed`` must
    name what is built (the sampler's key), so a different build gets other names.
    """

    def __init__(self, seed: str):
        import hashlib

        self.base = (1 << 40) + (int(hashlib.sha256(seed.encode()).hexdigest()[:9], 16) << 24)

    def __enter__(self):
        import itertools

        from tensorflow.python.framework import ops

        self._ops, self._uid = ops, ops.uid
        counter = itertools.count(self.base)
        ops.uid = lambda: next(counter)
        return self

    def __exit__(self, *exc):
        self._ops.uid = self._uid
        return False
