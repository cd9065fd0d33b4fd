"""Configuration: one TOML file of defaults, named profiles, env and CLI overrides.

Precedence, lowest first:
  1. ``generator/defaults.toml`` (every setting of every stage, documented),
  2. the profile named by ``profile`` (``[profiles.<name>]`` in the same file),
  3. a user TOML file (``--config`` or ``GENERATOR_CONFIG``),
  4. environment variables ``GENERATOR_<SECTION>__<KEY>`` (e.g. ``GENERATOR_TRAIN__STEPS=50``),
  5. CLI flags.

Each stage module defines its settings as a dataclass; this module only merges
and validates, so adding a setting means adding a dataclass field and a line in
``defaults.toml``.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import os
import tomllib
from pathlib import Path
from typing import Any, Mapping

from .errors import UserError

DEFAULTS_PATH = Path(__file__).with_name("defaults.toml")
ENV_PREFIX = "GENERATOR_"

# section name -> "module:Dataclass"; stage modules import nothing heavy at import time.
SECTIONS = {
    "paths": "generator.config:PathSettings",
    "ingest": "generator.ingest:IngestSettings",
    "model": "generator.base_model:ModelSettings",
    "train": "generator.train:TrainSettings",
    "generate": "generator.sample:GenerateSettings",
    "curate": "generator.curate:CurateSettings",
    "render": "generator.render:RenderSettings",
    "publish": "generator.publish:PublishSettings",
}

SECRET_MARKERS = ("secret", "password", "token", "access_key", "fernet")


@dataclasses.dataclass
class PathSettings:
    # Where stage artifacts go; relative paths below resolve against it.
    workdir: str = "var/run"
    # gpt-2-simple checkpoint root: <checkpoint_dir>/<train.run_name>/
    checkpoint_dir: str = "checkpoints"
    # Base models in gpt-2-simple's layout: <models_dir>/<model.name>/
    models_dir: str = "models"

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
        """The rendered site, re-rendered in place each night (unchanged files are not rewritten)."""
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

    def as_dict(self, mask_secrets: bool = True) -> dict:
        data = {"profile": self.profile}
        for name in SECTIONS:
            section = dataclasses.asdict(getattr(self, name))
            if mask_secrets:
                section = {key: _mask(key, value) for key, value in section.items()}
            data[name] = section
        return data


def _mask(key: str, value: Any) -> Any:
    if value and any(marker in key.lower() for marker in SECRET_MARKERS):
        return "****"
    return value


def _section_class(name: str):
    module_name, class_name = SECTIONS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def _read_toml(path: Path) -> dict:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise UserError(f"config file not found: {path}", "pass an existing TOML file to --config") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"config file {path} is not valid TOML: {exc}", "fix the syntax in that file") from None


def _merge(base: dict, override: Mapping, origin: str) -> None:
    for section, values in override.items():
        if section == "profile":
            continue
        if section not in SECTIONS:
            raise UserError(
                f"unknown config section [{section}] in {origin}",
                f"use one of: {', '.join(SECTIONS)}",
            )
        if not isinstance(values, Mapping):
            raise UserError(f"[{section}] in {origin} must be a table", f"write it as [{section}] with key = value lines")
        base.setdefault(section, {}).update(values)


def _coerce(section: str, key: str, raw: Any, default: Any, origin: str) -> Any:
    """Coerce env strings (and TOML ints for floats) to the type of the default."""
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
            if isinstance(raw, float) and not raw.is_integer():
                raise ValueError(raw)
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, list):
            if isinstance(raw, str):
                return [item.strip() for item in raw.split(",") if item.strip()]
            return list(raw)
        if isinstance(default, str):
            return str(raw)
    except (TypeError, ValueError):
        raise UserError(
            f"{section}.{key} from {origin} must be {type(default).__name__}, got {raw!r}",
            f"set {section}.{key} to a {type(default).__name__}",
        ) from None
    return raw


def load_config(
    profile: str | None = None,
    config_file: str | os.PathLike | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Build the effective configuration (see module docstring for precedence)."""
    environ = os.environ if environ is None else environ
    defaults = _read_toml(DEFAULTS_PATH)
    profiles = defaults.pop("profiles", {})

    user: dict = {}
    config_file = config_file or environ.get(f"{ENV_PREFIX}CONFIG")
    if config_file:
        user = _read_toml(Path(config_file))
    user_profiles = user.pop("profiles", {})
    profiles = {**profiles, **user_profiles}

    profile = profile or environ.get(f"{ENV_PREFIX}PROFILE") or user.get("profile") or defaults.get("profile", "tiny")
    if profile not in profiles:
        raise UserError(f"unknown profile {profile!r}", f"use one of: {', '.join(sorted(profiles))}")

    merged: dict = {}
    _merge(merged, defaults, str(DEFAULTS_PATH))
    _merge(merged, profiles[profile], f"profile {profile!r}")
    _merge(merged, user, str(config_file))

    env_layer: dict = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX):].lower().partition("__")
        env_layer.setdefault(section, {})[key] = value
    _merge(merged, env_layer, "the environment")
    if overrides:
        _merge(merged, {s: {k: v for k, v in vals.items() if v is not None} for s, vals in overrides.items()}, "the command line")

    sections = {}
    for name in SECTIONS:
        cls = _section_class(name)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        instance = cls()
        values = merged.get(name, {})
        for key, raw in values.items():
            if key not in fields:
                raise UserError(
                    f"unknown setting {name}.{key}",
                    f"valid {name} settings: {', '.join(fields)}",
                )
            setattr(instance, key, _coerce(name, key, raw, getattr(instance, key), "config"))
        if hasattr(instance, "validate"):
            instance.validate()
        sections[name] = instance
    return Config(profile=profile, **sections)


def with_overrides(config: Config, **sections: Mapping[str, Any]) -> Config:
    """A copy of ``config`` with some settings replaced (``None`` values are ignored)."""
    config = copy.deepcopy(config)
    for name, values in sections.items():
        section = getattr(config, name)
        for key, value in values.items():
            if value is not None:
                if not hasattr(section, key):
                    raise UserError(f"unknown setting {name}.{key}", "check the setting's name")
                setattr(section, key, value)
    return config
