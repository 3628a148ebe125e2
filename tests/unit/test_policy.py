"""The policy file: what it grants, and every way a file can be wrong (runtime/policy.py)."""

from __future__ import annotations

import base64
import os

import pytest

from clipmesh.runtime.config import ConfigError
from clipmesh.runtime.policy import MAX_POLICY_BYTES, Policy, Quota, parse_policy
from clipmesh.runtime.watched import WatchedFile

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
POLICY = f"""
version: 1
defaults:
  quotas:
    provider_video_seconds_per_day: 600
    concurrent_jobs: 4
    ingest_bytes_per_day: 1GiB
webhooks:
  allowed_hosts: ["hooks.example.com", "*.team-a.example"]
callers:
  team-a:
    grants:
      - roles: [search, ingest, delete, previs]
        collections: ["team_a_*"]
      - roles: [search]
        collections: [shared]
      - roles: [generate]
    quotas: {{ingest_bytes_per_day: 500MB, provider_video_seconds_per_day: unlimited}}
    webhook_secrets: ["{SECRET}"]
    webhook_hosts: [ci.team-a.example]
  ops:
    grants: [{{roles: [admin]}}]
"""


def test_roles_apply_to_the_collections_they_name_and_nothing_else() -> None:
    team = parse_policy(POLICY, "policy.yaml").caller("team-a")
    assert team.allows("search", "team_a_clips") and team.allows("search", "shared")
    assert team.allows("ingest", "team_a_x") and not team.allows("ingest", "shared")
    assert not team.allows("search", "team_b_clips") and not team.allows("search", "team_a")
    assert team.allows("generate") and not team.allows("admin") and not team.admin
    assert not team.allows("delete", "shared")


def test_an_admin_may_do_everything_and_an_unlisted_caller_nothing() -> None:
    policy = parse_policy(POLICY, "policy.yaml")
    ops = policy.caller("ops")
    assert ops.admin and ops.allows("delete", "anything") and ops.allows("generate")
    stranger = policy.caller("mallory")
    assert not stranger.admin
    assert not any(stranger.allows(role, "shared") for role in ("search", "ingest", "generate"))
    # An unlisted caller still has the default quotas (it can hold nothing anyway).
    assert stranger.limit(Quota.CONCURRENT_JOBS) == 4


def test_a_callers_quotas_override_the_defaults_with_sizes_and_unlimited() -> None:
    team = parse_policy(POLICY, "policy.yaml").caller("team-a")
    assert team.limit(Quota.INGEST_BYTES_PER_DAY) == 500_000_000
    assert team.limit(Quota.PROVIDER_VIDEO_SECONDS_PER_DAY) is None  # unlimited
    assert team.limit(Quota.CONCURRENT_JOBS) == 4  # the default
    assert parse_policy(POLICY, "p").caller("ops").limit(Quota.INGEST_BYTES_PER_DAY) == 1 << 30
    assert team.webhook_secrets == (bytes(range(32)),)
    assert team.webhook_hosts == ("ci.team-a.example",)


def test_no_policy_means_everyone_may_do_everything_without_quotas() -> None:
    anyone = Policy.unrestricted().caller("whoever")
    assert anyone.admin and anyone.allows("delete", "any")
    assert all(anyone.limit(quota) is None for quota in Quota)
    assert not Policy.unrestricted().enforced and not anyone.webhook_secrets


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("callers: {a: {grants: [{roles: [serch], collections: [x]}]}}", "unknown role 'serch'"),
        ("callers: {a: {grants: [{roles: [search]}]}}", "list them in `collections`"),
        ("callers: {a: {grants: [{roles: []}]}}", "at least one role"),
        ("callers: {a: {grnts: []}}", "unknown key 'grnts'"),
        ("collers: {}", "unknown key 'collers'"),
        ("callers:\n  a: {}\n  a: {}\n", "is given twice"),
        ("x: &a [1, 2]\ncallers: *a\n", "aliases"),
        ("callers: [", "not valid YAML"),
        ("- just a list", "a policy is a mapping"),
        ("version: 2", "policy version 1"),
        ("callers: {'bad name!': {}}", "a caller's name"),
        ("callers: {a: {grants: [{roles: [search], collections: ['../x']}]}}", "collection name"),
        ("callers: {a: {quotas: {ingest_bytes_per_day: 5 parsecs}}}", "not a size"),
        ("callers: {a: {quotas: {concurrent_jobs: 2.5}}}", "whole number"),
        ("callers: {a: {quotas: {concurrent_jobs: -1}}}", "cannot be negative"),
        ("callers: {a: {quotas: {concurrent_jobs: .nan}}}", "expected a number"),
        ("callers: {a: {quotas: {concurrent_jobs: true}}}", "expected a number"),
        ("callers: {a: {quotas: {disk: 5}}}", "unknown key 'disk'"),
        ("callers: {a: {webhook_secrets: [hunter2]}}", "whsec_"),
        ("callers: {a: {webhook_secrets: [whsec_!!!]}}", "not valid base64"),
        ("callers: {a: {webhook_secrets: [whsec_c2hvcnQ=]}}", "at least 24 random bytes"),
        ("webhooks: {allowed_hosts: ['http://x']}", "not a host name"),
        ("webhooks: {allow_private_networks: yes please}", "true or false"),
        ("[" * 20_000 + "]" * 20_000, "nesting depth"),
    ],
)
def test_a_bad_policy_is_refused_naming_the_place(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_policy(text, "policy.yaml")
    assert problem in str(refused.value)
    assert str(refused.value).startswith("policy.yaml")


def test_a_secret_never_appears_in_a_refusal() -> None:
    text = POLICY.replace("version: 1", "version: 1\nbogus: true")
    with pytest.raises(ConfigError) as refused:
        parse_policy(text, "policy.yaml")
    assert SECRET.removeprefix("whsec_") not in str(refused.value)


def test_a_huge_policy_file_is_refused_unread(tmp_path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("# padding\n" * (MAX_POLICY_BYTES // 10 + 10))
    with pytest.raises(ConfigError, match="the limit is"):
        WatchedFile(path, "POLICY_FILE", parse_policy, what="policy", max_bytes=MAX_POLICY_BYTES)


def test_a_changed_policy_applies_and_a_broken_one_keeps_the_last_good(tmp_path, caplog) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    policy = WatchedFile(path, "POLICY_FILE", parse_policy, what="policy", check_interval_s=0)
    assert not policy.current().caller("team-a").allows("search", "team_b_x")
    path.write_text(POLICY.replace('"team_a_*"', '"team_*"'))
    os.utime(path, ns=(0, 1))  # a different mtime even on coarse-clock filesystems
    assert policy.current().caller("team-a").allows("search", "team_b_x")
    path.write_text("callers: {a: {grants: [{roles: [sudo]}]}}")
    assert policy.current().caller("team-a").allows("search", "team_b_x")  # the last good one
    assert any("policy changed but cannot be loaded" in r.getMessage() for r in caplog.records)
