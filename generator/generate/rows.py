"""What every sampler shares: a sampled row, and the automaton that finds the end marker in tokens.

The end marker is not one symbol of a byte-level BPE vocabulary (GPT-2 writes
``<|`` ``endoftext`` ``|>``, and the first piece often merges with the punctuation
before it, ``.<|``). :func:`end_marker_table` is a Knuth-Morris-Pratt matcher over
the tokens' characters, advanced per step by one lookup ``table[state, token]``:
it fires exactly where ``"<|endoftext|>" in text`` would on the decoded text,
whatever the tokenisation, without decoding text.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


@dataclasses.dataclass
class Row:
    """One sampled row: the new tokens up to and including the end marker (or the cap)."""

    tokens: list[int]
    terminated: bool
    logprob: float | None  # mean model log-probability of ``tokens`` (temperature 1, untruncated)


def end_marker_table(token_strings: list[str], marker: str) -> "np.ndarray":
    """KMP automaton over tokens: ``table[state, token]`` is the matcher state after ``token``.

    ``token_strings[i]`` is token i as gpt-2-simple's encoder stores it (byte-level
    unicode) and ``marker`` the marker in the same alphabet. State ``len(marker)``
    means "marker seen" and is absorbing.
    """
    import numpy as np

    size = len(marker)
    alphabet = set(marker)
    # Character-level KMP DFA; characters outside the marker send every state to 0.
    delta = [dict.fromkeys(alphabet, 0) for _ in range(size)]
    delta[0][marker[0]] = 1
    fallback = 0
    for state in range(1, size):
        delta[state] = dict(delta[fallback])
        delta[state][marker[state]] = state + 1
        fallback = delta[fallback][marker[state]]

    table = np.zeros((size + 1, len(token_strings)), dtype=np.int32)
    table[size, :] = size
    for token, text in enumerate(token_strings):
        states = list(range(size))
        for position, char in enumerate(text):
            states = [size if s == size else delta[s].get(char, 0) for s in states]
            if len(set(states)) == 1:  # every start state has converged: finish on one path
                state = states[0]
                for char in text[position + 1:]:
                    if state == size:
                        break
                    state = delta[state].get(char, 0)
                states = [state] * size
                break
        table[:size, token] = states
    return table
