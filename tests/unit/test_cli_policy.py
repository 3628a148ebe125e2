"""The CLI's offline tenancy commands: `clipmesh webhook-secret` makes secrets the policy
accepts, `clipmesh policy check` says what a file grants or where it is wrong (exit 0/1), and
quota amounts read in human units."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from clipmesh.cli.main import cli
from clipmesh.cli.quotas import human_amount, human_reset
from clipmesh.runtime.policy import MAX_POLICY_BYTES, parse_policy
from clipmesh_client.webhooks import decode_secret

REPOSITORY = Path(__file__).resolve().parents[2]
EXAMPLE_POLICY = REPOSITORY / "deploy/k8s/components/policy/policy.example.yaml"
POLICY = """
version: 1
defaults:
  quotas: {concurrent_jobs: 4, ingest_bytes_per_day: 1GiB}
webhooks:
  allowed_hosts: [hooks.example.com]
callers:
  team-a:
    grants:
      - roles: [search, ingest]
        collections: ["team_a_*"]
      - roles: [generate]
    quotas: {ingest_bytes_per_day: 200GiB, provider_video_seconds_per_day: 5400}
  ops:
    grants: [{roles: [admin]}]
"""


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_a_webhook_secret_is_32_random_bytes_the_policy_accepts() -> None:
    first, second = (run("webhook-secret") for _ in range(2))
    assert first.exit_code == 0 and second.exit_code == 0
    secret = first.stdout.strip()
    assert secret.startswith("whsec_")
    key = decode_secret(secret)
    assert len(key) == 32
    assert second.stdout.strip() != secret
    text = f'callers:\n  a:\n    grants: [{{roles: [generate]}}]\n    webhook_secrets: ["{secret}"]'
    policy = parse_policy(text, "policy.yaml")
    assert policy.callers["a"].webhook_secrets == (key,)


def test_policy_check_summarises_a_good_file_and_exits_0(tmp_path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    result = run("policy", "check", str(path))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"{path}: a valid policy with 2 callers"
    team_a = lines[lines.index("team-a") :]
    assert team_a[1] == "  grants: search, ingest on team_a_*; generate"
    assert team_a[2] == (
        "  quotas: provider_video_seconds_per_day 1 h 30 min, concurrent_jobs 4 jobs, "
        "ingest_bytes_per_day 200.0 GiB"
    )
    assert "  grants: admin" in lines
    assert result.stderr == ""


def test_policy_check_names_the_place_at_fault_and_exits_1(tmp_path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY.replace("[search, ingest]", "[search, ingets]"))
    result = run("policy", "check", str(path))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.strip() == (
        f"error: {path}: callers.team-a.grants[0].roles[1]: unknown role 'ingets'; roles: "
        "search, ingest, delete, generate, previs, admin"
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot be read"),
        ("callers:\n  a: 1\n  a: 2\n", "the key 'a' is given twice"),
        ("#" * (MAX_POLICY_BYTES + 1), f"the limit is {MAX_POLICY_BYTES:,}"),
    ],
)
def test_policy_check_refuses_what_the_services_refuse(tmp_path, content, expected) -> None:
    path = tmp_path / "policy.yaml"
    if content is not None:
        path.write_text(content)
    result = run("policy", "check", str(path))
    assert result.exit_code == 1
    assert expected in result.stderr


def test_policy_check_warns_of_the_example_policys_placeholder_secrets() -> None:
    result = run("policy", "check", str(EXAMPLE_POLICY))
    assert result.exit_code == 0  # the services accept it
    assert "callers.team-a.webhook_secrets[0] is all zero bytes" in result.stderr
    assert "clipmesh webhook-secret" in result.stderr


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (None, "bytes", "unlimited"),
        (0, "bytes", "0 B"),
        (50 * 2**30, "bytes", "50.0 GiB"),
        (1536 * 2**20, "bytes", "1.5 GiB"),
        (12.5, "seconds", "12.5 s"),
        (5400, "seconds", "1 h 30 min"),
        (125, "seconds", "2 min 5 s"),
        (1, "jobs", "1 job"),
        (8, "jobs", "8 jobs"),
    ],
)
def test_quota_amounts_read_in_human_units(value, unit, expected) -> None:
    assert human_amount(value, unit) == expected


def test_a_reset_time_says_when_and_how_long_until_then() -> None:
    now = datetime.datetime(2026, 12, 2, 19, 47, 30, tzinfo=datetime.UTC)
    midnight = datetime.datetime(2026, 12, 3, tzinfo=datetime.UTC)
    assert human_reset(midnight, now) == "2026-12-03 00:00 UTC (in 4 h 12 min)"
