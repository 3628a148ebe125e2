"""Tenancy through the SDK and the CLI, on real servers: `whoami` with and without a policy,
quota and permission refusals decoded from real refusals, generation on the public port
(the orchestrator relaying to an in-process generator gateway) with its usage and a webhook
that verifies, and `clipmesh whoami` and the CLI's refusal lines.

Two meshes per module, each a generator and an orchestrator in this process: an open one (no
policy, no tokens) and a governed one (a tokens file and one policy file read by both, on
plaintext: TLS is test_tls_token_auth.py's subject)."""

from __future__ import annotations

import asyncio
import datetime
import json

import pytest
import pytest_asyncio
from click.testing import CliRunner

from clipmesh.cli.main import cli
from clipmesh.cli.policy import new_webhook_secret
from clipmesh.runtime.auth import token_digest
from clipmesh_client import (
    AsyncClient,
    CallerInfo,
    Client,
    Grant,
    PermissionDeniedError,
    QuotaExceededError,
    QuotaUsage,
)
from clipmesh_client.generation import GeneratorClient
from clipmesh_client.webhooks import verify
from tests.integration.test_webhook_post import receiving

pytestmark = pytest.mark.asyncio(loop_scope="module")

ALICE_TOKEN = "alice-token-0123456789"
BOB_TOKEN = "bob-token-9876543210"
WEBHOOK_SECRET = new_webhook_secret()
POLICY = f"""
version: 1
defaults:
  quotas: {{ingest_bytes_per_day: 0}}
webhooks:
  allow_http_loopback: true
callers:
  alice:
    grants:
      - roles: [search, ingest]
        collections: ["team_a_*"]
      - roles: [generate]
    quotas:
      ingest_bytes_per_day: 2GiB
      provider_video_seconds_per_day: 600
      concurrent_jobs: 3
    webhook_secrets: ["{WEBHOOK_SECRET}"]
  bob:
    grants:
      - roles: [ingest]
        collections: [inbox]
"""
TINY_CLIP = {"backend": "animatic", "size": (128, 128), "duration_s": 1, "fps": 12}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def open_mesh(mesh_factory):
    """No policy and no tokens: every caller may do everything."""
    async with mesh_factory.in_process("generator", "orchestrator") as mesh:
        yield mesh


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def governed(mesh_factory, tmp_path_factory):
    """Tokens for alice and bob, and POLICY, read by the orchestrator and the generator."""
    files = tmp_path_factory.mktemp("tenancy")
    tokens, policy = files / "tokens.txt", files / "policy.yaml"
    tokens.write_text(f"alice:{token_digest(ALICE_TOKEN)}\nbob:{token_digest(BOB_TOKEN)}\n")
    policy.write_text(POLICY)
    env = {
        "generator": {"CLIPMESH_GENERATOR_POLICY_FILE": str(policy)},
        "orchestrator": {
            "CLIPMESH_ORCHESTRATOR_AUTH_TOKENS_FILE": str(tokens),
            "CLIPMESH_ORCHESTRATOR_POLICY_FILE": str(policy),
        },
    }
    async with mesh_factory.in_process("generator", "orchestrator", env=env) as mesh:
        yield mesh


def whoami(target: str, token: str | None = None) -> CallerInfo:
    with Client(target, token=token, max_attempts=1) as client:
        return client.whoami()


def next_midnight(now: datetime.datetime) -> datetime.datetime:
    return datetime.datetime.combine(
        now.date() + datetime.timedelta(days=1), datetime.time(), datetime.UTC
    )


def resets_tonight(when: datetime.datetime | None, before: datetime.datetime) -> bool:
    """True when `when` is the next UTC midnight (as of `before` or of now: the day may turn)."""
    return when in {next_midnight(before), next_midnight(datetime.datetime.now(datetime.UTC))}


# --- who am I -----------------------------------------------------------------------------


async def test_without_a_policy_every_caller_is_an_admin_without_limits(open_mesh) -> None:
    before = datetime.datetime.now(datetime.UTC)
    info = await asyncio.to_thread(whoami, open_mesh.target("orchestrator"))
    assert (info.caller, info.admin, info.authorization_enabled) == ("anonymous", True, False)
    assert info.grants == (Grant(("admin",), ()),)
    assert [(q.quota, q.unit, q.limit) for q in info.quotas] == [
        ("ingest_bytes_per_day", "bytes", None),
        ("provider_video_seconds_per_day", "seconds", None),
        ("concurrent_jobs", "jobs", 200.0),  # the gateway's own per-caller bound
    ]
    ingest, seconds, jobs = info.quotas
    assert ingest.used == 0 and resets_tonight(ingest.reset_time, before)
    assert resets_tonight(seconds.reset_time, before) and jobs.reset_time is None
    assert info.warnings == ()


async def test_the_async_client_answers_the_same(open_mesh) -> None:
    async with AsyncClient(open_mesh.target("orchestrator"), max_attempts=1) as client:
        info = await client.whoami()
    assert info == await asyncio.to_thread(whoami, open_mesh.target("orchestrator"))


async def test_without_a_generator_generation_quotas_are_left_out_with_a_warning(
    mesh_factory, free_ports
) -> None:
    nobody = f"127.0.0.1:{free_ports()}"
    env = {"orchestrator": {"CLIPMESH_ORCHESTRATOR_GENERATOR_TARGET": nobody}}
    async with mesh_factory.in_process("orchestrator", env=env) as mesh:
        info = await asyncio.to_thread(whoami, mesh.target("orchestrator"))
    assert [q.quota for q in info.quotas] == ["ingest_bytes_per_day"]
    (warning,) = info.warnings
    assert warning.startswith("generation quotas unknown: ")


async def test_a_caller_learns_its_name_grants_and_quotas_from_the_policy(governed) -> None:
    before = datetime.datetime.now(datetime.UTC)
    info = await asyncio.to_thread(whoami, governed.target("orchestrator"), ALICE_TOKEN)
    assert (info.caller, info.admin, info.authorization_enabled) == ("alice", False, True)
    assert info.grants == (
        Grant(("ingest", "search"), ("team_a_*",)),
        Grant(("generate",), ()),
    )
    ingest, seconds, jobs = info.quotas
    assert (ingest.quota, ingest.limit, ingest.used) == ("ingest_bytes_per_day", 2 * 2**30, 0)
    assert (seconds.quota, seconds.limit) == ("provider_video_seconds_per_day", 600)
    assert (jobs.quota, jobs.limit, jobs.reset_time) == ("concurrent_jobs", 3, None)
    assert resets_tonight(ingest.reset_time, before)
    assert info.warnings == ()


# --- refusals, decoded --------------------------------------------------------------------


def ingest_as(target: str, token: str, collection: str) -> list:
    with Client(target, token=token, max_attempts=1) as client:
        return list(client.ingest(["/clips/harbour.mp4"], collection=collection))


async def test_a_used_up_quota_is_a_quota_exceeded_error_with_its_figures(governed) -> None:
    before = datetime.datetime.now(datetime.UTC)
    with pytest.raises(QuotaExceededError) as refused:
        await asyncio.to_thread(ingest_as, governed.target("orchestrator"), BOB_TOKEN, "inbox")
    error = refused.value
    assert (error.reason, error.quota) == ("QUOTA_EXCEEDED", "ingest_bytes_per_day")
    assert (error.limit, error.used) == (0, 0)
    assert resets_tonight(error.reset_time, before)
    assert 0 < error.retry_after_s <= 86_400  # until that midnight
    (violation,) = error.quota_violations
    assert violation.subject == "caller:bob"


async def test_a_missing_role_is_a_permission_denied_error_naming_it(governed) -> None:
    def search() -> None:
        with Client(governed.target("orchestrator"), token=ALICE_TOKEN, max_attempts=1) as client:
            client.search(text="a harbour", collection="team_b_clips")

    with pytest.raises(PermissionDeniedError) as refused:
        await asyncio.to_thread(search)
    error = refused.value
    assert (error.reason, error.permission, error.collection) == (
        "MISSING_PERMISSION",
        "search",
        "team_b_clips",
    )


# --- generation on the public port --------------------------------------------------------


def generate_and_list(target: str, **client_options) -> dict:
    with GeneratorClient(target, timeout_s=30, max_attempts=1, **client_options) as generator:
        events = list(generator.generate("a slow push in on a lighthouse", **TINY_CLIP))
        job = events[-1].job
        return {
            "job": job,
            "listed": [listed.job_id for listed in generator.list_jobs(page_size=5)],
            "usage": generator.usage(),
        }


async def test_the_generator_client_generates_through_the_public_port(open_mesh) -> None:
    out = await asyncio.to_thread(
        generate_and_list, open_mesh.target("orchestrator"), caller="sdk-tenant"
    )
    job = out["job"]
    assert (job.state, job.size, job.caller, job.webhook_url) == (
        "succeeded",
        (128, 128),
        "sdk-tenant",
        "",
    )
    assert job.job_id in out["listed"]
    assert [(q.quota, q.unit, q.limit) for q in out["usage"]] == [
        ("provider_video_seconds_per_day", "seconds", None),
        ("concurrent_jobs", "jobs", 200.0),
    ]
    assert all(isinstance(q, QuotaUsage) for q in out["usage"])


async def test_a_token_owns_its_jobs_and_its_webhook_verifies(governed) -> None:
    target = governed.target("orchestrator")
    async with receiving() as receiver:
        url = f"http://127.0.0.1:{receiver.port}/ok"

        def generate() -> dict:
            with GeneratorClient(target, token=ALICE_TOKEN, max_attempts=1) as generator:
                events = list(generator.generate("a lighthouse", webhook_url=url, **TINY_CLIP))
                return {"job": events[-1].job, "usage": generator.usage()}

        out = await asyncio.to_thread(generate)
        for _ in range(600):  # the dispatcher posts once the job's end is committed
            if receiver.requests:
                break
            await asyncio.sleep(0.05)
    job = out["job"]
    assert (job.state, job.caller, job.webhook_url) == ("succeeded", "alice", url)
    assert [(q.quota, q.limit) for q in out["usage"]] == [
        ("provider_video_seconds_per_day", 600),
        ("concurrent_jobs", 3),
    ]
    (request,) = receiver.requests
    verify(WEBHOOK_SECRET, request.headers, request.body)
    event = json.loads(request.body)
    assert (event["type"], event["data"]["job"]["jobId"]) == ("job.succeeded", job.job_id)


# --- the CLI ------------------------------------------------------------------------------


def run_cli(token: str, *args: str):
    """`clipmesh ARGS…` in this process, with `token` as CLIPMESH_TOKEN."""
    return CliRunner().invoke(cli, list(args), env={"CLIPMESH_TOKEN": token})


async def test_clipmesh_whoami_shows_the_caller_grants_and_quotas(governed) -> None:
    target = governed.target("orchestrator")
    result = await asyncio.to_thread(run_cli, ALICE_TOKEN, "whoami", "--target", target)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "caller         alice" in out and "authorization  on" in out
    assert "team_a_*" in out and "generate" in out
    assert "2.0 GiB" in out and "10 min" in out and "3 jobs" in out
    result = await asyncio.to_thread(run_cli, ALICE_TOKEN, "whoami", "--json", "--target", target)
    shown = json.loads(result.stdout)
    assert (shown["caller"], shown["authorization_enabled"]) == ("alice", True)
    assert shown["grants"][0] == {"roles": ["ingest", "search"], "collections": ["team_a_*"]}
    ingest = shown["quotas"][0]
    assert (ingest["quota"], ingest["limit"], ingest["unit"]) == (
        "ingest_bytes_per_day",
        2 * 2**30,
        "bytes",
    )
    assert datetime.datetime.fromisoformat(ingest["reset_time"]).tzinfo is not None


async def test_the_cli_spells_out_quota_and_permission_refusals(governed) -> None:
    target = governed.target("orchestrator")
    ingest = await asyncio.to_thread(
        run_cli,
        BOB_TOKEN,
        "ingest",
        "/clips/harbour.mp4",
        "--collection",
        "inbox",
        "--target",
        target,
    )
    assert ingest.exit_code == 1
    (line,) = ingest.stderr.strip().splitlines()
    assert line.startswith("error: RESOURCE_EXHAUSTED [QUOTA_EXCEEDED]: ")
    assert "(quota ingest_bytes_per_day: 0 B used of 0 B, resets " in line
    assert " UTC (in " in line
    search = await asyncio.to_thread(
        run_cli,
        ALICE_TOKEN,
        "search",
        "--text",
        "x",
        "--collection",
        "team_b_clips",
        "--target",
        target,
    )
    assert search.exit_code == 1
    (line,) = search.stderr.strip().splitlines()
    assert line.startswith("error: PERMISSION_DENIED [MISSING_PERMISSION]: ")
    assert line.endswith("(missing permission: search in collection 'team_b_clips')")
