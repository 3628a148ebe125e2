"""The channel factory's service config: round_robin, a default deadline, UNAVAILABLE retries."""

from __future__ import annotations

import json

from clipmesh.runtime.channels import ChannelOptions, channel_arguments, service_config


def test_service_config_balances_round_robin_and_retries_only_unavailable() -> None:
    config = json.loads(service_config(ChannelOptions(timeout_s=0.5, max_attempts=4)))
    assert config["loadBalancingConfig"] == [{"round_robin": {}}]
    (method,) = config["methodConfig"]
    assert method["name"] == [{}]
    assert "timeout" not in method  # deadlines come from the DefaultDeadline interceptor
    assert method["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert method["retryPolicy"]["maxAttempts"] == 4


def test_retry_attempts_are_capped_and_can_be_disabled() -> None:
    capped = json.loads(service_config(ChannelOptions(max_attempts=50)))
    assert capped["methodConfig"][0]["retryPolicy"]["maxAttempts"] == 5
    none = json.loads(service_config(ChannelOptions(max_attempts=1)))
    assert "retryPolicy" not in none["methodConfig"][0]


def test_message_sizes_and_keepalive_are_explicit() -> None:
    args = dict(channel_arguments(ChannelOptions(max_message_mb=8, keepalive_time_s=20)))
    assert args["grpc.max_receive_message_length"] == 8 * 1024 * 1024
    assert args["grpc.max_send_message_length"] == 8 * 1024 * 1024
    assert args["grpc.keepalive_time_ms"] == 20_000
