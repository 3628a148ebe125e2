"""Where webhooks may not go: refused at submission by the policy's rules (production: https
to listed hosts only, no loopback or private addresses; a caller needs a signing secret), and
refused at delivery when an allowed name resolves to an address the rules refuse (DNS
rebinding). Nothing is ever sent to the receiver listening on loopback; no job is created for
a refused submission.

DNS is the one boundary stood in for: the gateway is built here with an injected resolver.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from clipmesh.generator.backends.animatic import AnimaticBackend
from clipmesh.generator.config import GeneratorConfig
from clipmesh.generator.gateway import Gateway
from clipmesh.generator.servicer import GeneratorServicer
from clipmesh.generator.webhooks import WebhookSettings
from clipmesh.runtime.access import AccessControl, PolicySource
from clipmesh.runtime.server import Application, GrpcService
from clipmesh_api.generator.v1 import generator_pb2, generator_pb2_grpc
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.integration.conftest import (
    TEAM_A,
    as_caller,
    run_job,
    settled,
    webhook_gateway,
    webhook_refusal,
)
from tests.support import webhook_outbox

pytestmark = pytest.mark.timeout(120)

State = generator_pb2.JobState

PRODUCTION = {
    "webhooks": {"allowed_hosts": ["hooks.example"]},
    "callers": {"team-a": TEAM_A, "team-b": {"grants": [{"roles": ["generate"]}]}},
}


async def test_production_refuses_loopback_unlisted_hosts_and_callers_without_a_secret(
    tmp_path: Path,
) -> None:
    with WebhookReceiver() as receiver:
        port = receiver.port
        async with webhook_gateway(tmp_path, PRODUCTION) as gateway:
            refused = {
                url: await webhook_refusal(gateway, url)
                for url in (
                    f"http://127.0.0.1:{port}/hook",
                    f"https://127.0.0.1:{port}/hook",
                    f"https://localhost:{port}/hook",
                    f"https://elsewhere.example:{port}/hook",
                    f"http://hooks.example:{port}/hook",
                )
            }
            no_secret = await webhook_refusal(
                gateway, "https://hooks.example/hook", caller="team-b"
            )
            jobs = {
                caller: await gateway.stub.ListJobs(
                    generator_pb2.ListJobsRequest(), metadata=as_caller(caller)
                )
                for caller in ("team-a", "team-b")
            }
            rows = await asyncio.to_thread(webhook_outbox, gateway.database)
        reached = receiver.connections

    reasons = {url: (error.code, error.reason) for url, error in refused.items()}
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    assert reasons == {
        f"http://127.0.0.1:{port}/hook": (invalid, "WEBHOOK_ADDRESS_NOT_ALLOWED"),
        f"https://127.0.0.1:{port}/hook": (invalid, "WEBHOOK_ADDRESS_NOT_ALLOWED"),
        f"https://localhost:{port}/hook": (invalid, "WEBHOOK_ADDRESS_NOT_ALLOWED"),
        f"https://elsewhere.example:{port}/hook": (invalid, "WEBHOOK_HOST_NOT_ALLOWED"),
        f"http://hooks.example:{port}/hook": (invalid, "WEBHOOK_SCHEME_NOT_ALLOWED"),
    }
    assert all(error.metadata["field"] == "webhook_url" for error in refused.values())
    assert no_secret.code == grpc.StatusCode.FAILED_PRECONDITION
    assert no_secret.reason == "WEBHOOK_SECRET_MISSING"
    assert no_secret.metadata["field"] == "webhook_url"
    assert [len(listing.jobs) for listing in jobs.values()] == [0, 0]
    assert rows == [] and reached == 0


class ResolvingGatewayApp(Application):
    """The gateway on the animatic backend, its webhooks resolving names with `resolver`."""

    def __init__(self, config: GeneratorConfig, resolver) -> None:
        self.policies = PolicySource.from_config(config)
        self.gateway = Gateway(
            config.data_dir,
            {"animatic": AnimaticBackend(max_concurrent=1)},
            default_backend="animatic",
            policies=self.policies,
            webhook_settings=WebhookSettings(
                initial_backoff_s=0.2, max_backoff_s=1.0, resolver=resolver
            ),
        )
        self.servicer = GeneratorServicer(self.gateway)

    def grpc_services(self) -> list[GrpcService]:
        return [GrpcService.generated(generator_pb2, generator_pb2_grpc, self.servicer)]

    def interceptors(self) -> list:
        return [AccessControl(self.policies, enforce_roles=False)]

    async def start(self) -> None:
        await self.gateway.start()

    async def stop(self) -> None:
        await self.gateway.stop()


@pytest.mark.parametrize(
    ("rules", "answers", "refusal"),
    [
        # Production: the name now points at loopback, where the receiver listens.
        ({}, ["127.0.0.1"], "resolves to 127.0.0.1, a loopback address"),
        # Development (loopback open): one private answer beside the receiver's address refuses
        # the whole name.
        ({"allow_http_loopback": True}, ["127.0.0.1", "10.0.0.7"], "resolves to 10.0.0.7"),
    ],
    ids=["loopback", "private-among-loopback"],
)
async def test_an_allowed_name_resolving_to_a_refused_address_is_given_up_at_delivery(
    tmp_path: Path, rules: dict, answers: list[str], refusal: str
) -> None:
    """The name passes at submission (the policy lists it; nothing is resolved then); at
    delivery it resolves where webhooks may not go: nothing is sent, the event fails for good."""
    asked: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return answers

    webhooks = {"allowed_hosts": ["hooks.example"], **rules}
    policy = {"webhooks": webhooks, "callers": {"team-a": TEAM_A}}
    with WebhookReceiver() as receiver:
        async with webhook_gateway(
            tmp_path, policy, lambda config: ResolvingGatewayApp(config, resolve)
        ) as gateway:
            before = await gateway.attempts()
            job = await run_job(gateway, f"https://hooks.example:{receiver.port}/hook")
            (row,) = await settled(gateway, 1)
            after = await gateway.attempts()
        reached = receiver.connections

    print(
        f"\nrebinding to {answers}: outbox {row['state']} after {row['attempts']} attempt(s): "
        f"{row['last_error']!r}; receiver connections {reached}"
    )
    assert job.state == State.JOB_STATE_SUCCEEDED
    assert asked == ["hooks.example"]
    assert (row["state"], row["attempts"], row["job_id"]) == ("failed", 1, job.job_id)
    assert f"hooks.example {refusal}" in row["last_error"]
    assert after["failed"] - before["failed"] == 1 and after["retry"] == before["retry"]
    assert reached == 0
