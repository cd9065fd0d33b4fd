"""The Llama family's training examples: training lines as chat exchanges, in tokens, and their batches.

Each training line becomes :func:`textformat.chat_training_text`: a user turn asking for the line's
``[type] [genre]`` (context, no loss) and the assistant's reply, the description and
``<|im_end|>`` (the loss is on these tokens). The prompt and the reply are tokenized apart and
joined, which is exactly what generation sees: it encodes the prompt, then samples the reply's
tokens one by one.

Batches come from a stream of the examples, each epoch in its own seeded order
(``default_rng([seed, epoch])``); step ``s`` (counted from 1 over the run's whole life) takes the
stream's items ``(s - 1) * batch .. s * batch - 1``. A step's batch depends only on the data, the
seed and the step, so a run resumed at its last save trains on exactly the batches it would have.
A batch is right-padded to a multiple of ``LENGTH_STEP`` tokens, so a handful of shapes recur.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ...textformat import CHAT_CLOSE, chat_training_text, parse_training_line

LENGTH_STEP = 8


@dataclasses.dataclass(frozen=True)
class Example:
    ids: tuple[int, ...]   # prompt then reply, as the model reads them
    context: int           # ids[:context] are the prompt: context only, no loss


def chat_parts(line: str) -> tuple[str, str] | None:
    """(prompt, reply) of a training line in the chat rendering; None for a line that is not one."""
    text = chat_training_text(line)
    if text is None:
        return None
    reply = parse_training_line(line.strip())[2] + CHAT_CLOSE
    return text[:-len(reply)], reply


def chat_examples(lines, tokenizer, n_ctx: int) -> list[Example]:
    """The examples of ``lines`` (training-text lines), each cut to the model's context."""
    parts = [found for line in lines if (found := chat_parts(line)) is not None]
    if not parts:
        return []
    prompts = tokenizer.encode_batch([prompt for prompt, _ in parts])
    replies = tokenizer.encode_batch([reply for _, reply in parts])
    bos = tokenizer.bos_ids
    examples = []
    for prompt, reply in zip(prompts, replies):
        ids = (bos + prompt + reply)[:n_ctx]
        if len(ids) > len(bos) + len(prompt):
            examples.append(Example(tuple(ids), len(bos) + len(prompt)))
    return examples


def read_lines(text_path: str | Path) -> list[str]:
    return [line for line in Path(text_path).read_text(encoding="utf-8").splitlines() if line.strip()]


def step_items(count: int, batch_size: int, seed: int, step: int) -> list[int]:
    """Which examples step ``step`` (1-based) trains on: its slice of the seeded epoch stream."""
    start = (step - 1) * batch_size
    items = []
    epoch, order = None, None
    for position in range(start, start + batch_size):
        if position // count != epoch:
            epoch = position // count
            order = np.random.default_rng([seed, epoch]).permutation(count)
        items.append(int(order[position % count]))
    return items


def pad_batch(examples: list[Example], pad_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tokens, attention mask, reply mask), each (batch, width), width a multiple of ``LENGTH_STEP``."""
    longest = max(len(example.ids) for example in examples)
    width = max(LENGTH_STEP, -(-longest // LENGTH_STEP) * LENGTH_STEP)
    tokens = np.full((len(examples), width), pad_id, np.int32)
    mask = np.zeros((len(examples), width), np.int32)
    reply = np.zeros((len(examples), width), np.int32)
    for row, example in enumerate(examples):
        tokens[row, :len(example.ids)] = example.ids
        mask[row, :len(example.ids)] = 1
        reply[row, example.context:len(example.ids)] = 1
    return tokens, mask, reply


def reply_tokens(example: Example) -> int:
    return len(example.ids) - example.context


def within_budget(examples: list[Example], max_tokens: int) -> list[Example]:
    """The leading examples whose reply tokens add up to at most ``max_tokens`` (at least one)."""
    chosen, total = [], 0
    for example in examples:
        total += reply_tokens(example)
        if chosen and total > max_tokens:
            break
        chosen.append(example)
    return chosen


def eval_batches(examples: list[Example], batch_size: int, pad_id: int):
    """Examples sorted by length in padded batches (less padding; the sum of losses does not care)."""
    ordered = sorted(examples, key=lambda example: len(example.ids))
    for start in range(0, len(ordered), batch_size):
        yield pad_batch(ordered[start:start + batch_size], pad_id)


def pad_id_of(tokenizer) -> int:
    """Padding is masked out everywhere; the end-of-text id is as good as any (0 without one)."""
    return int(tokenizer.eos_id or 0)


def read_tokenizer(gguf_path: str | Path):
    """The GGUF's tokenizer alone (the file is memory-mapped; no weights are dequantised)."""
    import gguf

    from .gguf_weights import tokenizer_fields
    from .tokenizer import LlamaTokenizer

    return LlamaTokenizer(tokenizer_fields(gguf.GGUFReader(str(gguf_path))))


def generation_figures(lines: list[str], tokenizer) -> dict:
    """``max_tokens`` (the longest reply, ``<|im_end|>`` included) and ``seen_tokens`` in Llama tokens.

    A pretrained model's vocabulary is its own: every id may be sampled except the control tokens
    a reply never holds (``<|im_start|>``, ``<|endoftext|>``...); ``<|im_end|>`` ends the reply.
    """
    replies = [parts[1] for line in lines if (parts := chat_parts(line)) is not None]
    longest = max((len(ids) for ids in tokenizer.encode_batch(replies)), default=0)
    end = tokenizer.token_to_id(CHAT_CLOSE)
    control = set(tokenizer.tokenizer.get_added_tokens_decoder())  # ids of the tokens kept whole
    seen = [index for index in range(tokenizer.vocab_size) if index not in control or index == end]
    return {"max_tokens": longest, "seen_tokens": seen}
