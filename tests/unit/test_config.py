"""Service config: defaults, environment, flags, and errors that name the bad setting."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from clipmesh.encoder.config import EncoderConfig
from clipmesh.orchestrator.config import OrchestratorConfig
from clipmesh.runtime.config import ConfigError, ServiceConfig, describe, load_config, setting

WEIGHTS = {"CLIPMESH_ENCODER_WEIGHTS": "random:0"}


def test_defaults_are_the_documented_ports() -> None:
    config = load_config(EncoderConfig, environ=WEIGHTS)
    assert (config.port, config.metrics_port) == (50051, 9151)
    orchestrator = load_config(OrchestratorConfig, environ={})
    assert (orchestrator.port, orchestrator.metrics_port) == (50050, 9150)


def test_environment_overrides_defaults_and_flags_override_environment() -> None:
    environ = {**WEIGHTS, "CLIPMESH_ENCODER_PORT": "6000", "CLIPMESH_ENCODER_GRACE_S": "2.5"}
    config = load_config(EncoderConfig, environ=environ, flags={"port": "7000", "grace_s": None})
    assert config.port == 7000  # flag wins
    assert config.grace_s == 2.5  # env applies where no flag was given


def test_types_are_parsed() -> None:
    config = load_config(
        EncoderConfig,
        environ={
            **WEIGHTS,
            "CLIPMESH_ENCODER_DATA_DIR": "/tmp/x",
            "CLIPMESH_ENCODER_LOG_LEVEL": "DEBUG",
        },
    )
    assert config.data_dir == Path("/tmp/x")
    assert config.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"CLIPMESH_ENCODER_PORT": "fifty"}, "CLIPMESH_ENCODER_PORT"),
        ({"CLIPMESH_ENCODER_PORT": "70000"}, "CLIPMESH_ENCODER_PORT"),
        ({"CLIPMESH_ENCODER_GRACE_S": "-1"}, "CLIPMESH_ENCODER_GRACE_S"),
        ({"CLIPMESH_ENCODER_LOG_LEVEL": "LOUD"}, "CLIPMESH_ENCODER_LOG_LEVEL"),
    ],
)
def test_bad_environment_values_name_the_variable(environ: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_config(EncoderConfig, environ={**WEIGHTS, **environ})


def test_bad_flag_names_the_flag() -> None:
    with pytest.raises(ConfigError, match="--max-message-mb"):
        load_config(EncoderConfig, environ=WEIGHTS, flags={"max_message_mb": "lots"})


def test_unknown_setting_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown setting"):
        load_config(EncoderConfig, environ=WEIGHTS, flags={"colour": "blue"})


def test_cross_field_validation_names_the_setting() -> None:
    with pytest.raises(ConfigError, match="CLIPMESH_ORCHESTRATOR_INDEX_TARGET"):
        load_config(OrchestratorConfig, environ={"CLIPMESH_ORCHESTRATOR_INDEX_TARGET": "  "})


def test_booleans_and_lists() -> None:
    @dataclass(frozen=True)
    class Example(ServiceConfig):
        SERVICE = "example"
        enabled: bool = setting(False, help="on?")
        roots: tuple[str, ...] = setting((), help="roots")

    config = load_config(
        Example, environ={"CLIPMESH_EXAMPLE_ENABLED": "yes", "CLIPMESH_EXAMPLE_ROOTS": "/a, /b,"}
    )
    assert config.enabled is True
    assert config.roots == ("/a", "/b")
    with pytest.raises(ConfigError, match="CLIPMESH_EXAMPLE_ENABLED"):
        load_config(Example, environ={"CLIPMESH_EXAMPLE_ENABLED": "maybe"})


def test_secrets_are_redacted_when_described() -> None:
    @dataclass(frozen=True)
    class WithSecret(ServiceConfig):
        SERVICE = "secretive"
        api_key: str = setting("", help="provider key", secret=True)

    config = load_config(WithSecret, environ={"CLIPMESH_SECRETIVE_API_KEY": "sk-live-123"})
    assert config.api_key == "sk-live-123"
    assert "sk-live-123" not in str(describe(config))


@pytest.mark.parametrize(
    ("weights", "complaint"),
    [
        ("", "no weights configured"),
        ("laion2b", "is not one of"),
        ("random:abc", "integer seed"),
        ("s3:bucket/key", "is not one of"),
    ],
)
def test_encoder_weights_must_be_explicit_and_well_formed(weights: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint) as caught:
        load_config(EncoderConfig, environ={"CLIPMESH_ENCODER_WEIGHTS": weights})
    assert "CLIPMESH_ENCODER_WEIGHTS" in str(caught.value)
