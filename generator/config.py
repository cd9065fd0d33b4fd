"""Configuration: every setting declared once, named profiles, a file, the environment, flags.

Precedence, lowest first:
  1. the built-in default, declared with its help line beside its stage's code
     (``setting(default, help)``, see :mod:`generator.settings`),
  2. the profile named by ``profile`` (``[profiles.<name>]`` in ``generator/defaults.toml``
     or in the user's file),
  3. a user TOML file (``--config`` or ``GENERATOR_CONFIG``),
  4. environment variables ``GENERATOR_<SECTION>__<KEY>`` (e.g. ``GENERATOR_TRAIN__STEPS=50``),
  5. CLI flags, or a DAG run's params (both map to settings declaratively).

Every layer goes through the same type conversion, and ``validate()`` runs once,
here, on the finished configuration. Each value remembers where it came from
(``Config.origins``), which ``python -m generator config --explain`` shows.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Mapping

from .errors import UserError
from .redact import mask_url
from .settings import check_declared, describe, setting

DEFAULTS_PATH = Path(__file__).with_name("defaults.toml")
ENV_PREFIX = "GENERATOR_"

# section name -> "module:Dataclass"; stage modules import nothing heavy at import time.
SECTIONS = {
    "paths": "generator.config:PathSettings",
    "ingest": "generator.ingest:IngestSettings",
    "model": "generator.base_model:ModelSettings",
    "train": "generator.train:TrainSettings",
    "generate": "generator.generate:GenerateSettings",
    "curate": "generator.curate:CurateSettings",
    "render": "generator.render:RenderSettings",
    "publish": "generator.publish:PublishSettings",
}

# Besides settings declared secret=True: keys whose name says credential, word by word
# (``val_max_tokens`` is not a token).
_SECRET_WORDS = {"secret", "password", "passwd", "token", "fernet", "credentials"}


@dataclasses.dataclass
class PathSettings:
    workdir: str = setting("var/run", "state and artifacts root: nights/<night>/, site/, archive/; "
                           "relative paths below resolve against it")
    checkpoint_dir: str = setting("checkpoints", "gpt-2-simple checkpoint root: <checkpoint_dir>/<train.run_name>/")
    models_dir: str = setting("models", "base models in gpt-2-simple's layout: <models_dir>/<model.name>/")

    def resolve(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else Path(self.workdir).expanduser() / path

    @property
    def checkpoint_root(self) -> Path:
        return self.resolve(self.checkpoint_dir)

    @property
    def models_root(self) -> Path:
        return self.resolve(self.models_dir)

    def night_dir(self, night: str) -> Path:
        """Per-night stage artifacts: <workdir>/nights/<night>/<stage>/…"""
        return Path(self.workdir).expanduser() / "nights" / night

    @property
    def archive_root(self) -> Path:
        """Each night's kept samples and report, kept across nights for the archive and history."""
        return Path(self.workdir).expanduser() / "archive"

    @property
    def site_root(self) -> Path:
        """The rendered site, re-rendered each night (unchanged files are not rewritten)."""
        return Path(self.workdir).expanduser() / "site"


@dataclasses.dataclass
class Config:
    profile: str
    paths: PathSettings
    ingest: Any
    model: Any
    train: Any
    generate: Any
    curate: Any
    render: Any
    publish: Any
    # "section.key" -> where its value came from (absent: the built-in default)
    origins: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def as_dict(self, mask_secrets: bool = True) -> dict:
        data = {"profile": self.profile}
        for name in SECTIONS:
            section = dataclasses.asdict(getattr(self, name))
            if mask_secrets:
                declared = describe(section_class(name))
                section = {key: _mask(key, value, declared[key]["secret"]) for key, value in section.items()}
            data[name] = section
        return data

    def explain(self) -> list[dict]:
        """Every setting with its value (secrets masked), where it came from, and its help line."""
        rows = []
        for name in SECTIONS:
            values = self.as_dict()[name]
            for key, info in describe(section_class(name)).items():
                allowed = info["range"] or (info["pattern"] and "a plain name") or ""
                rows.append({"key": f"{name}.{key}", "value": values[key], "allowed": allowed,
                             "origin": self.origins.get(f"{name}.{key}", "default"), "help": info["help"]})
        return rows


def _mask(key: str, value: Any, declared_secret: bool = False) -> Any:
    words = set(key.lower().split("_"))
    if value and (declared_secret or words & _SECRET_WORDS or key.lower().endswith("access_key")):
        return "****"
    if isinstance(value, str) and "://" in value:
        return mask_url(value)
    return value


def section_class(name: str):
    module_name, class_name = SECTIONS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def split_key(key: str) -> tuple[str, str]:
    """``"train.steps"`` -> ``("train", "steps")``, checked against the declared settings."""
    section, _, name = key.partition(".")
    if section not in SECTIONS:
        raise UserError(f"unknown config section [{section}]", f"use one of: {', '.join(SECTIONS)}")
    if name not in {f.name for f in dataclasses.fields(section_class(section))}:
        raise UserError(f"unknown setting {key}", "run `python -m generator config --explain` for every setting")
    return section, name


def _read_toml(path: Path) -> dict:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise UserError(f"config file not found: {path}", "pass an existing TOML file to --config") from None
    except OSError as exc:
        raise UserError(f"cannot read config file {path}: {exc.strerror or exc}", "pass a readable TOML file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"config file {path} is not valid TOML: {exc}", "fix the syntax in that file") from None


def _profiles(values: Mapping, origin: str) -> dict:
    """A file's ``[profiles.<name>]`` tables, their shape checked (each a table of section tables)."""
    profiles = values.get("profiles", {})
    if not isinstance(profiles, Mapping):
        raise UserError(f"profiles in {origin} must be a table, got {profiles!r}",
                        "write each profile as a [profiles.<name>] table of [section] settings")
    for name, body in profiles.items():
        if not isinstance(body, Mapping):
            raise UserError(f"profile {name!r} in {origin} must be a table, got {body!r}",
                            f"write it as [profiles.{name}] with section = {{ key = value }} lines")
    return dict(profiles)


def _layer(values: Mapping, origin: str) -> dict:
    """A layer's ``{"section.key": (raw value, origin)}``, every name checked."""
    flat = {}
    for section, table in values.items():
        if section == "profile":
            continue
        if section not in SECTIONS:
            raise UserError(f"unknown config section [{section}] in {origin}", f"use one of: {', '.join(SECTIONS)}")
        if not isinstance(table, Mapping):
            raise UserError(f"[{section}] in {origin} must be a table", f"write it as [{section}] with key = value lines")
        fields = {f.name for f in dataclasses.fields(section_class(section))}
        for key, raw in table.items():
            if key not in fields:
                raise UserError(f"unknown setting {section}.{key} in {origin}",
                                f"valid {section} settings: {', '.join(sorted(fields))}")
            flat[f"{section}.{key}"] = (raw, origin)
    return flat


def _coerce(key: str, raw: Any, default: Any, origin: str) -> Any:
    """Convert a raw value (env strings, TOML ints for floats) to the type of the default."""
    expected = type(default).__name__
    try:
        if isinstance(default, bool):
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if isinstance(default, int):
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError(raw)
            return int(raw)
        if isinstance(default, float):
            if isinstance(raw, bool):  # nan and inf convert; check_declared refuses them
                raise ValueError(raw)
            return float(raw)
        if isinstance(default, list):  # every list setting is a list of strings
            if isinstance(raw, str):
                return [item.strip() for item in raw.split(",") if item.strip()]
            if not isinstance(raw, (list, tuple)) or not all(isinstance(item, str) for item in raw):
                raise ValueError(raw)
            return list(raw)
        if isinstance(default, str):
            if not isinstance(raw, (str, int, float)) or isinstance(raw, bool):
                raise ValueError(raw)
            return str(raw)
    except (TypeError, ValueError, OverflowError):
        if isinstance(default, list):
            expected = "list of strings"
        expected = f"a {expected}" if " " in expected else expected
        raise UserError(f"{key} from {origin} must be {expected}, got {raw!r}",
                        f"set {key} to {expected if ' ' in expected else 'a ' + expected} in {origin}") from None
    return raw


def env_origin(key: str) -> str:
    section, _, name = key.partition(".")
    return f"environment variable {ENV_PREFIX}{section.upper()}__{name.upper()}"


def default_profile(environ: Mapping[str, str], user: dict, shipped: dict) -> str:
    """The profile when none is named: GENERATOR_PROFILE, the user's file, the shipped file, else "smollm2"."""
    return environ.get(f"{ENV_PREFIX}PROFILE") or user.get("profile") or shipped.get("profile") or "smollm2"


def load_config(
    profile: str | None = None,
    config_file: str | os.PathLike | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    environ: Mapping[str, str] | None = None,
    override_origins: Mapping[str, str] | None = None,
) -> Config:
    """Build and validate the effective configuration (see the module docstring for precedence).

    ``overrides`` are the top layer (``{"train": {"steps": 5}}``; ``None`` values are
    ignored); ``override_origins`` names where each came from (``{"train.steps": "--steps"}``).
    """
    environ = os.environ if environ is None else environ
    shipped = _read_toml(DEFAULTS_PATH)
    profiles = _profiles(shipped, str(DEFAULTS_PATH))

    user: dict = {}
    config_file = config_file or environ.get(f"{ENV_PREFIX}CONFIG")
    if config_file:
        user = _read_toml(Path(config_file))
    profiles = {**profiles, **_profiles(user, str(config_file))}
    user.pop("profiles", None)
    if not isinstance(user.get("profile", ""), str):
        raise UserError(f"profile in {config_file} must be a string, got {user['profile']!r}",
                        'write it as profile = "tiny" (one profile name)')

    profile = profile or default_profile(environ, user, shipped)
    if profile not in profiles:
        raise UserError(f"unknown profile {profile!r}", f"use one of: {', '.join(sorted(profiles))}")

    merged: dict = {}
    merged.update(_layer(profiles[profile], f"profile {profile!r}"))
    merged.update(_layer(user, str(config_file)))
    env_values: dict = {}
    for name, value in environ.items():
        if name.startswith(ENV_PREFIX) and "__" in name:
            section, _, key = name[len(ENV_PREFIX):].lower().partition("__")
            env_values.setdefault(section, {})[key] = value
    for key, (raw, _) in _layer(env_values, "the environment").items():
        merged[key] = (raw, env_origin(key))
    origins = dict(override_origins or {})
    for key, (raw, _) in _layer({s: {k: v for k, v in values.items() if v is not None}
                                 for s, values in (overrides or {}).items()}, "the command line").items():
        merged[key] = (raw, origins.get(key, "the command line"))

    sections = {}
    for name in SECTIONS:
        instance = section_class(name)()
        for key, (raw, origin) in merged.items():
            section, _, field = key.partition(".")
            if section == name:
                setattr(instance, field, _coerce(key, raw, getattr(instance, field), origin))
        sections[name] = instance
    config = Config(profile=profile, origins={key: origin for key, (_, origin) in merged.items()}, **sections)
    for name in SECTIONS:  # each value in its declared range first, naming where it came from
        check_declared(sections[name], name, config.origins)
    for name in SECTIONS:
        validate = getattr(sections[name], "validate", None)
        if validate:
            validate()
    return config


def settings_help(key: str) -> str:
    """The declared help line of ``section.key``, with its built-in default."""
    from .settings import help_with_default

    section, name = split_key(key)
    return help_with_default(section_class(section), name)


_FLAG_KEY = re.compile(r"^setting:(.+)$")
_FLAG_NAMES: dict[str, str] = {}  # "setting:<key>" -> the flag that sets it, for origins


def add_setting_flag(parser, flag: str, key: str, *aliases: str, **kwargs) -> None:
    """An argparse flag that overrides setting ``key``; its help and type come from the declaration.

    The parsed value lands in ``args.__dict__["setting:<key>"]`` for :func:`flag_overrides`.
    """
    section, name = split_key(key)
    info = describe(section_class(section))[name]
    default = info["default"]
    dest = f"setting:{key}"
    options = {"dest": dest, "default": None, "help": settings_help(key).replace("%", "%%")}
    if isinstance(default, bool):
        options["action"] = argparse.BooleanOptionalAction
    elif isinstance(default, list):
        options.update(action="append", metavar=name.upper().rstrip("S"))
    else:
        options.update(type=type(default), metavar=name.upper())
        if info["choices"]:
            options["choices"] = info["choices"]
    if section == "paths":  # a path typed on the command line is relative to where it was typed
        options["type"] = lambda value: str(Path(value).expanduser().absolute())
    options.update(kwargs)
    parser.add_argument(flag, *aliases, **options)
    _FLAG_NAMES.setdefault(dest, flag)


def flag_overrides(args) -> tuple[dict, dict]:
    """(overrides, origins) of the setting flags given on the command line."""
    overrides: dict = {}
    origins: dict = {}
    for dest, value in vars(args).items():
        match = _FLAG_KEY.match(dest)
        if match and value is not None:
            section, name = split_key(match.group(1))
            overrides.setdefault(section, {})[name] = value
            origins[match.group(1)] = f"flag {_FLAG_NAMES.get(dest, dest)}"
    return overrides, origins

