"""What the terminal shows: results on stdout, our log and progress bars on stderr, library chatter in the log.

gpt-2-simple prints its progress with ``print`` ("Loading checkpoint …", "[12 | 3.1]
loss=5.29 avg=5.68", "For larger models, the recommended finetune() parameters
are: …"), TensorFlow's C++ side writes its start-up notes (absl, oneDNN, cuInit)
straight to file descriptor 2, and its Python side logs deprecation notices
through its own handler. None of it is the command's result, so:

- :func:`library_output` wraps a call into gpt-2-simple: what it prints becomes
  DEBUG records of our log (one per line), optionally fed to a callback (train's
  progress bar reads the loss lines);
- :func:`native_stderr_to_log` (the CLI, for the whole command) sends what C++
  writes to fd 2 into the log at DEBUG, while Python's own stderr (our log lines,
  progress bars, ``error:`` lines) goes to the terminal as before;
- :func:`quiet_library_loggers` demotes TensorFlow's and Python's warnings to DEBUG;
- :func:`progress` is a tqdm bar on a terminal only, never in a pipe or a task log.

``-v`` shows all of it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import threading
from typing import Callable, Iterator

log = logging.getLogger("generator.library")


class _LineLogger(io.TextIOBase):
    """A text stream that turns each written line into a DEBUG record (and a callback)."""

    def __init__(self, logger: logging.Logger, on_line: Callable[[str], None] | None = None):
        self.logger, self.on_line, self.pending = logger, on_line, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.replace("\r", "\n").split("\n")
        for line in lines:
            self._emit(line)
        return len(text)

    def flush(self) -> None:
        if self.pending:
            self._emit(self.pending)
            self.pending = ""

    def _emit(self, line: str) -> None:
        if line.strip():
            self.logger.debug("%s", line.rstrip())
            if self.on_line:
                self.on_line(line)


@contextlib.contextmanager
def library_output(on_line: Callable[[str], None] | None = None) -> Iterator[None]:
    """Inside: what Python code prints (to stdout or stderr) is logged at DEBUG, line by line.

    Progress bars created *before* entering keep the real stderr, which they captured.
    """
    stream = _LineLogger(log, on_line)
    with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
        try:
            yield
        finally:
            stream.flush()


def progress(total: int | None, desc: str, unit: str = "it", initial: int = 0):
    """A tqdm progress bar on stderr when stderr is a terminal; a no-op bar otherwise."""
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True,
                disable=not sys.stderr.isatty(), leave=False)


class _Demote(logging.Filter):
    """Library warnings below ERROR become DEBUG records: shown with -v, hidden otherwise."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


def quiet_library_loggers() -> None:
    """TensorFlow's own handler and Python's warnings go through our log, demoted to DEBUG."""
    logging.captureWarnings(True)
    for name in ("tensorflow", "py.warnings", "absl"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(logging.DEBUG)
        if not any(isinstance(f, _Demote) for f in logger.filters):
            logger.addFilter(_Demote())


@contextlib.contextmanager
def native_stderr_to_log() -> Iterator[None]:
    """Route what C/C++ code writes to file descriptor 2 into the log at DEBUG, for the block's duration.

    Python's ``sys.stderr`` is re-opened on a copy of the original descriptor first,
    so our log handler, progress bars and error lines still reach the terminal.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real fd 2 (embedded, pytest capture)
        yield
        return
    read_end, write_end = os.pipe()
    original_stderr = sys.stderr
    sys.stderr = open(saved, "w", buffering=1, encoding=getattr(original_stderr, "encoding", None) or "utf-8",
                      errors="replace", closefd=False)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is original_stderr:
            handler.setStream(sys.stderr)
    os.dup2(write_end, 2)
    os.close(write_end)
    native = logging.getLogger("generator.native")

    def pump() -> None:
        with open(read_end, "r", encoding="utf-8", errors="replace") as pipe:
            for line in pipe:
                if line.strip():
                    native.debug("%s", line.rstrip())

    reader = threading.Thread(target=pump, name="native-stderr", daemon=True)
    reader.start()
    try:
        yield
    finally:
        os.dup2(saved, 2)  # closes the pipe's last write end held by fd 2: the reader sees EOF
        reader.join(timeout=5)
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stderr:
                handler.setStream(original_stderr)
        sys.stderr.flush()
        sys.stderr = original_stderr
        os.close(saved)
