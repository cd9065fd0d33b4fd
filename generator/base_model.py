"""Base model: a pretrained GPT-2, or a small one bootstrapped offline.

Both end up in gpt-2-simple's own layout, ``<models_dir>/<name>/`` (the files are
:mod:`generator.models.gpt2.weights`'s), so the very same ``gpt2.finetune`` /
``gpt2.generate`` code serves a laptop CPU, the tests and a GPU worker. Pretrained
models (124M, 355M, ...) come from a local folder or ``gpt2.download_gpt2``; offline,
``bootstrap`` trains a byte-level BPE on the catalog and initialises GPT-2 weights.
What is the family's (the files, tokenizer, weights) sits in ``models/gpt2/``; this
module is what any family's base model shares: its settings, when one is made, the
lock and staging folder it is made in, and its manifest. The Llama family's base is a GGUF
file (``model.gguf_path``, default the fetched SmolLM2-135M-Instruct): nothing is made, the
file is checked by its digest (:func:`llama_base`).
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
from pathlib import Path

from .artifacts import manifest_path, path_inside, read_manifest, write_manifest
from .checkpoints import read_hparams
from .errors import UserError
from .models.gpt2 import weights as gpt2_weights
from .models.gpt2.weights import is_complete
from .settings import NAME_PATTERN, check_declared, setting

log = logging.getLogger(__name__)


@dataclasses.dataclass
class ModelSettings:
    family: str = setting("gpt2", "model family: gpt2 (gpt-2-simple's GPT-2, pretrained or bootstrapped, under "
                          "<models_dir>/<name>) or llama (a pretrained Llama GGUF, model.gguf_path, fine-tuned with "
                          "train.adapter)", choices=("gpt2", "llama"))
    gguf_path: str = setting("", "llama: the base model's GGUF file; empty = SmolLM2-135M-Instruct Q4_1 in the machine "
                             "cache (~/.cache/netflix-gallery/models/), fetched by `python -m generator fetch-model`")
    name: str = setting("tiny", "base model: a pretrained GPT-2 (124M, 355M, ...) or a bootstrapped profile's name "
                        "(llama: the base model's name in manifests and the model card)", pattern=NAME_PATTERN)
    source: str = setting("bootstrap", "pretrained: <models_dir>/<name> in gpt-2-simple's layout, else "
                          "gpt2.download_gpt2; bootstrap: train a byte-level BPE on the catalog and initialise "
                          "a fresh GPT-2 (offline)", choices=("bootstrap", "pretrained"))
    download: bool = setting(True, "try gpt2.download_gpt2 when a pretrained model is missing locally")
    vocab_size: int = setting(4096, "bootstrap: BPE vocabulary size", at_least=256, at_most=1_000_000)
    n_ctx: int = setting(1024, "bootstrap: context length; gpt-2-simple's finetune always samples 1024-token "
                         "windows, so it stays 1024", at_least=1)
    n_embd: int = setting(128, "bootstrap: model width", at_least=1, at_most=65536)
    n_head: int = setting(4, "bootstrap: attention heads (must divide n_embd)", at_least=1, at_most=1024)
    n_layer: int = setting(2, "bootstrap: transformer layers", at_least=1, at_most=1024)
    seed: int = setting(1234, "bootstrap: seed of the fresh weights", at_least=0, below=2**63)
    pad_vocab: bool = setting(False, "bootstrap: pad the vocabulary with placeholder tokens (never produced by "
                              "the BPE) to exactly vocab_size + 1 entries, e.g. GPT-2's 50,257 for a 124M shape")

    def validate(self) -> None:
        check_declared(self, "model")  # the loader checked a loaded config; this guards direct callers
        if self.family not in ("gpt2", "llama"):
            raise UserError(f"model.family must be 'gpt2' or 'llama', got {self.family!r}", "set model.family in your config")
        if self.source not in ("bootstrap", "pretrained"):
            raise UserError(f"model.source must be 'bootstrap' or 'pretrained', got {self.source!r}",
                            "set model.source in your config")
        if self.n_embd % self.n_head:
            raise UserError(f"model.n_embd ({self.n_embd}) must be divisible by model.n_head ({self.n_head})",
                            "pick a width that is a multiple of the head count")
        if self.n_ctx != 1024:
            # gpt2.finetune samples 1024-token windows whatever the model's context is.
            raise UserError(f"model.n_ctx must be 1024 for gpt-2-simple fine-tuning, got {self.n_ctx}",
                            "leave model.n_ctx at 1024; make the model small with n_embd/n_layer instead")

    @property
    def hparams(self) -> dict:
        return {"n_vocab": self.vocab_size + 1, "n_ctx": self.n_ctx, "n_embd": self.n_embd,
                "n_head": self.n_head, "n_layer": self.n_layer}


def model_path(models_root: str | Path, name: str) -> Path:
    """``<models_root>/<name>``, which must stay inside ``models_root`` (bootstrap replaces that folder)."""
    return path_inside(models_root, name, "model.name")


def ensure_base_model(models_root: str | Path, settings: ModelSettings, corpus_path: str | Path | None = None) -> dict:
    """Make sure ``<models_root>/<name>`` holds a usable base model; return its manifest.

    An existing complete model is reused as is (a base model must not change
    under a checkpoint trained from it).
    """
    if settings.family == "llama":
        return llama_base(settings)
    models_root = Path(models_root)
    model_dir = model_path(models_root, settings.name)
    if is_complete(model_dir):
        return read_manifest(model_dir) if manifest_path(model_dir).is_file() else {
            "stage": "base_model", "name": settings.name, "path": str(model_dir), "created": False,
            "hparams": read_hparams(model_dir)}
    if settings.source != "pretrained" and corpus_path is None:
        raise UserError(f"base model {settings.name!r} does not exist yet", "run ingest first so it can be bootstrapped from the catalog")
    from .lock import exclusive

    with exclusive(model_dir, "base model"):  # two bootstraps of one model would mix their files
        if is_complete(model_dir):  # made by the holder we just waited out
            return ensure_base_model(models_root, settings, corpus_path)
        if settings.source == "pretrained":
            return _download_pretrained(models_root, settings)
        return bootstrap(models_root, settings, corpus_path)


def llama_base(settings: ModelSettings) -> dict:
    """The Llama family's base: its GGUF file, checked by digest (nothing is bootstrapped or copied)."""
    from .models.llama.model_file import base_file

    path, digest = base_file(settings.gguf_path)
    return {"stage": "base_model", "family": "llama", "name": settings.name, "source": "gguf", "path": str(path),
            "sha256": digest, "created": False}


def _download_pretrained(models_root: Path, settings: ModelSettings) -> dict:
    model_dir = model_path(models_root, settings.name)
    where = f"{model_dir}/ (encoder.json, vocab.bpe, hparams.json, checkpoint, model.ckpt.*)"
    if not settings.download:
        raise UserError(f"pretrained GPT-2 {settings.name!r} not found in {model_dir}",
                        f"place gpt-2-simple's files in {where}, or enable model.download")
    models_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{settings.name}.", dir=models_root))
    try:
        gpt2_weights.download(staging, settings.name)
    except Exception as exc:  # requests raises many kinds; all mean "no model"
        shutil.rmtree(staging, ignore_errors=True)
        raise UserError(
            f"could not download GPT-2 {settings.name!r} ({type(exc).__name__}: {str(exc)[:120]})",
            f"place gpt-2-simple's files in {where}, or use --profile tiny to bootstrap a model offline",
        ) from None
    (staging / settings.name).chmod(0o755)
    shutil.move(str(staging / settings.name), str(model_dir))
    shutil.rmtree(staging, ignore_errors=True)
    return write_manifest(model_dir, "base_model", name=settings.name, source="pretrained", path=str(model_dir),
                          created=True, hparams=read_hparams(model_dir))


def bootstrap(models_root: str | Path, settings: ModelSettings, corpus_path: str | Path) -> dict:
    """Create ``<models_root>/<name>``: tokenizer from the corpus plus freshly initialised GPT-2 weights."""
    models_root = Path(models_root)
    model_dir = model_path(models_root, settings.name)
    models_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{settings.name}.", dir=models_root))
    try:
        hparams, parameters = gpt2_weights.write_fresh_model(staging, settings.hparams, corpus_path,
                                                             pad_vocab=settings.pad_vocab, seed=settings.seed)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    staging.chmod(0o755)  # mkdtemp makes it private; workers on a shared volume must read it
    if model_dir.exists():  # a half-made folder from an older crash; never a complete one (checked above)
        shutil.rmtree(model_dir)
    staging.rename(model_dir)
    log.info("bootstrapped base model %s: vocab %d, %d parameters", model_dir, hparams["n_vocab"], parameters)
    return write_manifest(model_dir, "base_model", name=settings.name, source="bootstrap", path=str(model_dir),
                          created=True, hparams=hparams, parameters=parameters, corpus=str(corpus_path))


def add_cli(subparsers) -> None:
    from .config import add_setting_flag

    parser = subparsers.add_parser(
        "base-model", parents=[subparsers.common],
        help="fetch a pretrained GPT-2 or bootstrap a small one offline (llama: check the GGUF's digest)",
        description="Make MODELS_DIR/NAME hold a base model in gpt-2-simple's layout: a pretrained GPT-2 "
        "(local or downloaded) or, with source=bootstrap, a BPE tokenizer trained on --corpus plus fresh weights.",
    )
    add_setting_flag(parser, "--models-dir", "paths.models_dir")
    add_setting_flag(parser, "--name", "model.name")
    add_setting_flag(parser, "--source", "model.source")
    add_setting_flag(parser, "--family", "model.family")
    add_setting_flag(parser, "--gguf-path", "model.gguf_path")
    parser.add_argument("--corpus", metavar="TRAIN.txt", help="training text to learn the tokenizer from (bootstrap)")
    parser.set_defaults(func=_cli)


def _cli(args, config) -> int:
    manifest = ensure_base_model(config.paths.models_root, config.model, args.corpus)
    digest = f" (sha256 {manifest['sha256']})" if manifest.get("sha256") else ""
    print(f"base model {manifest['name']} ready at {manifest['path']}{digest}")
    return 0
