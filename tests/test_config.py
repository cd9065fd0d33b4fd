import json
import os

import pytest

from generator.config import load_config
from generator.errors import UserError

from conftest import assert_clean_error, run_cli


def test_every_setting_is_declared_once_with_help():
    """Defaults and help live in the settings dataclasses only; defaults.toml holds just profiles."""
    import tomllib

    from generator.config import DEFAULTS_PATH, SECTIONS, section_class
    from generator.settings import describe

    shipped = tomllib.loads(DEFAULTS_PATH.read_text())
    assert set(shipped) == {"profile", "profiles"}
    for name in SECTIONS:
        for key, info in describe(section_class(name)).items():
            assert info["help"].strip(), f"{name}.{key} has no help line"


def test_explain_names_where_each_value_came_from(tmp_path):
    user = tmp_path / "c.toml"
    user.write_text("[generate]\nsamples = 5\n")
    result = run_cli("config", "--explain", "--profile", "test", "--config", str(user),
                     env={**os.environ, "GENERATOR_TRAIN__STEPS": "7"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "train.steps = 7  (environment variable GENERATOR_TRAIN__STEPS)" in lines
    assert f"generate.samples = 5  ({user})" in lines
    assert "model.n_embd = 32  (profile 'test')" in lines
    assert "curate.min_words = 8  (default)" in lines


def test_a_bad_environment_value_names_the_variable():
    with pytest.raises(UserError, match="environment variable GENERATOR_TRAIN__STEPS"):
        load_config(environ={"GENERATOR_TRAIN__STEPS": "many"})


def test_masking_is_by_declaration_and_url_secrets():
    from generator.config import _mask

    assert _mask("val_max_tokens", 50000) == 50000
    assert _mask("endpoint_url", "http://user:password@minio:9000/x?X-Amz-Signature=abc") == "http://minio:9000/x"
    assert _mask("anything", "s3cr3t", declared_secret=True) == "****"


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
