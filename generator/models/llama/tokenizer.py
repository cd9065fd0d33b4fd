"""The GGUF's own byte-level BPE as a Hugging Face ``tokenizers.Tokenizer``.

Vocabulary, merges and token types come from ``tokenizer.ggml.*``. The pre-tokenizer follows
llama.cpp's for the file's ``tokenizer.ggml.pre`` (``llama-vocab.cpp``): for ``smollm`` (and
starcoder, refact, command-r, codeshell, exaone, minerva) every digit is its own piece, then
GPT-2's regex ``'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)``
(what ``ByteLevel(use_regex=True)`` applies); ``gpt2``-style files skip the digit split.
Control and user-defined tokens (``<|im_start|>``, ``<|endoftext|>`` ...) are kept whole, as
llama.cpp does when it parses special tokens. Whether a BOS goes first is the file's
``tokenizer.ggml.add_bos_token`` (False for SmolLM2): see ``LlamaTokenizer.bos_ids``.
"""

from __future__ import annotations

from ...errors import UserError

DIGITS_APART = {"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva"}
GPT2_REGEX_ONLY = {"gpt2", "mpt", "olmo", "jais", "default", None}
TOKEN_TYPE_CONTROL, TOKEN_TYPE_USER_DEFINED = 3, 4


class LlamaTokenizer:
    def __init__(self, fields: dict):
        from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

        if fields.get("model") != "gpt2":
            raise UserError(f"tokenizer model {fields.get('model')!r} is not supported (byte-level BPE 'gpt2' is)",
                            "use a GGUF file with a byte-level BPE tokenizer")
        pre = fields.get("pre")
        if pre not in DIGITS_APART | GPT2_REGEX_ONLY:
            raise UserError(f"pre-tokenizer {pre!r} is not supported", "use a GGUF with pre 'smollm' or 'gpt2'")
        tokens = list(fields["tokens"])
        merges = [tuple(merge.split(" ", 1)) for merge in fields["merges"]]
        bpe = models.BPE(vocab={token: index for index, token in enumerate(tokens)}, merges=merges,
                         fuse_unk=False, byte_fallback=False)
        self.tokenizer = Tokenizer(bpe)
        steps = [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
        if pre in DIGITS_APART:
            steps.insert(0, pre_tokenizers.Split(Regex(r"\p{N}"), behavior="isolated"))
        self.tokenizer.pre_tokenizer = pre_tokenizers.Sequence(steps)
        self.tokenizer.decoder = decoders.ByteLevel()
        types = list(fields.get("token_type") or [1] * len(tokens))
        special = [tokens[i] for i, kind in enumerate(types) if kind in (TOKEN_TYPE_CONTROL, TOKEN_TYPE_USER_DEFINED)]
        self.tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in special])
        self.vocab_size = len(tokens)
        self.bos_id = fields.get("bos_token_id")
        self.eos_id = fields.get("eos_token_id")
        self.add_bos = bool(fields.get("add_bos_token")) and self.bos_id is not None

    @property
    def bos_ids(self) -> list[int]:
        """What goes before any text: [BOS] when the file asks llama.cpp to add one, else nothing."""
        return [int(self.bos_id)] if self.add_bos else []

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def token_to_id(self, token: str) -> int | None:
        return self.tokenizer.token_to_id(token)
