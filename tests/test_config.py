import dataclasses
import json

import pytest

from generator.config import load_config
from generator.errors import UserError

from conftest import assert_clean_error, run_cli


def test_defaults_match_dataclasses():
    """Every section of defaults.toml sets exactly the fields its dataclass declares, to the same defaults."""
    import tomllib

    from generator.config import DEFAULTS_PATH, SECTIONS, _section_class

    raw = tomllib.loads(DEFAULTS_PATH.read_text())
    for name in SECTIONS:
        cls = _section_class(name)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if all("help" in f.metadata for f in fields.values()):
            # Declared once with generator.settings.setting(): no second copy in defaults.toml.
            assert name not in raw, f"[{name}] restates defaults declared in {cls.__module__}"
            continue
        assert set(raw.get(name, {})) == set(fields), name
        instance = cls()
        for key, value in raw[name].items():
            assert getattr(instance, key) == value, f"{name}.{key}"


def test_precedence_profile_file_env_flags(tmp_path):
    user = tmp_path / "my.toml"
    user.write_text('[train]\nsteps = 7\nlearning_rate = 0.5\n[generate]\nsamples = 3\n')
    config = load_config(profile="tiny", config_file=user, environ={"GENERATOR_TRAIN__STEPS": "9"},
                         overrides={"generate": {"samples": 11, "seed": None}})
    assert config.model.name == "tiny"          # profile
    assert config.train.learning_rate == 0.5    # file beats profile
    assert config.train.steps == 9              # env beats file
    assert config.generate.samples == 11        # flags beat env
    assert config.generate.seed == 42           # None flag = not given


def test_env_values_are_coerced_and_checked():
    config = load_config(environ={"GENERATOR_MULTI": "x", "GENERATOR_TRAIN__MULTI_GPU": "true",
                                  "GENERATOR_GENERATE__CONDITIONS": "[Movie], [TV Show] [Comedies]"})
    assert config.train.multi_gpu is True
    assert config.generate.conditions == ["[Movie]", "[TV Show] [Comedies]"]
    with pytest.raises(UserError, match="train.steps"):
        load_config(environ={"GENERATOR_TRAIN__STEPS": "many"})


@pytest.mark.parametrize("environ, needle", [
    ({"GENERATOR_PROFILE": "huge"}, "unknown profile"),
    ({"GENERATOR_TRAIN__STEPZ": "1"}, "unknown setting train.stepz"),
    ({"GENERATOR_NOPE__X": "1"}, "unknown config section"),
])
def test_bad_settings_are_named(environ, needle):
    with pytest.raises(UserError, match=needle):
        load_config(environ=environ)


def test_config_command_masks_secrets(tmp_path):
    user = tmp_path / "c.toml"
    user.write_text('[publish]\ntarget = "s3://bucket/site"\n')
    result = run_cli("config", "--config", str(user), "--profile", "124M")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["profile"] == "124M" and shown["model"]["source"] == "pretrained"
    assert shown["publish"]["target"] == "s3://bucket/site"


def test_secrets_are_masked():
    from generator.config import _mask

    assert _mask("aws_secret_access_key", "abc") == "****"
    assert _mask("fernet_key", "abc") == "****"
    assert _mask("top_k", 40) == 40


def test_unknown_profile_is_a_clean_cli_error():
    assert_clean_error(run_cli("config", "--profile", "huge"), "unknown profile", "tiny")
