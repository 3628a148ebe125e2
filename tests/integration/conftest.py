"""Fixtures and helpers shared by integration modules that check one subject between them.

TLS (`test_tls_transport.py`, `test_tls_token_auth.py`): development credentials from a CA
the mesh trusts and from one it does not, the TLS settings of a service, health checks over a
fresh connection, and the served certificate's expiry.

The generator gateway (`test_generator_jobs.py`, `test_generator_refusals_and_clients.py`): a
faithful local DashScope, the gateway serving on it (one of each per module), and the calls
the tests make to it.

Webhooks (`test_webhooks.py`, `test_webhook_refusals.py`): a gateway on the animatic backend
under a policy file with quick webhook retries, the jobs submitted to it with a webhook, and
its outbox and attempt counters as the tests read them.

Modules import the helpers from here, as `tests/fault` does.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
import standardwebhooks
import yaml
from cryptography import x509
from grpc_health.v1 import health_pb2, health_pb2_grpc

from clipmesh.cli.certs import DevCredentials, make_dev_credentials
from clipmesh.generator.config import GeneratorConfig
from clipmesh.generator.server import create_app
from clipmesh.index.config import IndexConfig
from clipmesh.runtime.config import load_config
from clipmesh.runtime.server import Application
from clipmesh_api.generator.v1 import generator_pb2, generator_pb2_grpc
from clipmesh_client import errors as client_errors
from clipmesh_client.webhooks import verify
from clipmesh_client.wire import ChannelPolicy, open_aio_channel
from tests.fakes.dashscope_server import FakeDashScope
from tests.fakes.webhook_receiver import ReceivedWebhook
from tests.support import scrape_metrics, serve_in_process, webhook_outbox

# --- TLS ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mesh_ca(tmp_path_factory) -> DevCredentials:
    """The development credentials every secured server of a module uses."""
    return make_dev_credentials(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory) -> DevCredentials:
    """Credentials from an unrelated CA, which the mesh must not trust (30 days, so that its
    certificates' expiry differs from the mesh's)."""
    return make_dev_credentials(tmp_path_factory.mktemp("other-certs"), valid_days=30)


def tls_env(service: str, credentials: DevCredentials, *, client_auth: bool) -> dict[str, str]:
    prefix = f"CLIPMESH_{service.upper()}_"
    return {
        prefix + "TLS_CERT_FILE": str(credentials.cert_file(service)),
        prefix + "TLS_KEY_FILE": str(credentials.key_file(service)),
        prefix + "TLS_CA_FILE": str(credentials.ca_file),
        prefix + "TLS_CLIENT_AUTH": str(client_auth).lower(),
    }


def index_config(tmp_path: Path, **environ: str) -> IndexConfig:
    return load_config(IndexConfig, environ={"CLIPMESH_INDEX_DATA_DIR": str(tmp_path), **environ})


EXPIRY_METRIC = "clipmesh_tls_certificate_expiry_timestamp_seconds"


def not_after(certificate: Path) -> float:
    """The certificate's expiry as a Unix time."""
    return x509.load_pem_x509_certificate(certificate.read_bytes()).not_valid_after_utc.timestamp()


async def health_code(target: str, credentials: grpc.ChannelCredentials | None) -> str:
    """The status code a health check over a fresh connection ends with."""
    if credentials is None:
        channel = grpc.aio.insecure_channel(target)
    else:
        channel = grpc.aio.secure_channel(target, credentials)
    async with channel:
        try:
            await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
        except grpc.aio.AioRpcError as error:
            return error.code().name
    return "OK"


# --- the generator gateway -----------------------------------------------------------------

State = generator_pb2.JobState


def gateway_environ(data_dir, fake: FakeDashScope, **extra: str) -> dict[str, str]:
    return {
        "CLIPMESH_GENERATOR_DATA_DIR": str(data_dir),
        "CLIPMESH_GENERATOR_DASHSCOPE_BASE_URL": fake.base_url,
        "CLIPMESH_GENERATOR_DASHSCOPE_API_KEY": fake.api_key,
        "CLIPMESH_GENERATOR_DASHSCOPE_POLL_INITIAL_S": "0.05",
        "CLIPMESH_GENERATOR_DASHSCOPE_POLL_MAX_S": "0.2",
        "CLIPMESH_GENERATOR_DASHSCOPE_RETRY_BASE_S": "0.01",
        **extra,
    }


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fake():
    with FakeDashScope(api_key="sk-test-secret", task_duration_s=(0.2, 0.4)) as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gateway(tmp_path_factory, fake):
    environ = gateway_environ(
        tmp_path_factory.mktemp("generator"),
        fake,
        CLIPMESH_GENERATOR_MAX_ACTIVE_JOBS_PER_CALLER="4",
    )
    config = load_config(GeneratorConfig, environ=environ)
    async with serve_in_process(config, create_app(config)) as running:
        channel = open_aio_channel(running.target, ChannelPolicy(timeout_s=60, max_attempts=1))
        running.stub = generator_pb2_grpc.GeneratorServiceStub(channel)
        yield running
        await channel.close()


def spec(
    prompt: str = "a slow push in on a lighthouse at dusk", **fields
) -> generator_pb2.GenerationSpec:
    defaults = {"width": 256, "height": 144, "duration_s": 1.0, "fps": 12.0}
    if fields.get("backend") == "dashscope":
        defaults = {}
    return generator_pb2.GenerationSpec(prompt=prompt, **{**defaults, **fields})


async def generate(gateway, request_spec, *, key: str = "", caller: str = "") -> list:
    metadata = (("x-clipmesh-caller", caller),) if caller else None
    call = gateway.stub.Generate(
        generator_pb2.GenerateRequest(spec=request_spec, idempotency_key=key), metadata=metadata
    )
    return [response.event async for response in call]


async def refusal(call) -> client_errors.ClipmeshError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return client_errors.from_rpc_error(caught.value)


# --- webhooks (test_webhooks.py, test_webhook_refusals.py) --------------------------------

WEBHOOK_SECRET = "whsec_" + base64.b64encode(bytes(range(1, 33))).decode()
TEAM_A = {"grants": [{"roles": ["generate"]}], "webhook_secrets": [WEBHOOK_SECRET]}
DEVELOPMENT_POLICY = {"webhooks": {"allow_http_loopback": True}, "callers": {"team-a": TEAM_A}}
WEBHOOK_ATTEMPTS = "clipmesh_generator_webhook_attempts_total"


@dataclass
class WebhookGateway:
    stub: generator_pb2_grpc.GeneratorServiceStub
    metrics_port: int
    database: Path

    async def attempts(self) -> dict[str, float]:
        """The webhook attempts counted so far, by outcome."""
        samples = await scrape_metrics(self.metrics_port)
        return {
            outcome: samples.get((WEBHOOK_ATTEMPTS, (("outcome", outcome),)), 0.0)
            for outcome in ("delivered", "retry", "failed")
        }


@contextlib.asynccontextmanager
async def webhook_gateway(
    tmp_path: Path, policy: dict, build: Callable[[GeneratorConfig], Application] = create_app
) -> AsyncIterator[WebhookGateway]:
    """A gateway under `policy`, retrying webhooks after 0.2 s, 0.4 s, … at most 1 s."""
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(yaml.safe_dump({"version": 1, **policy}))
    config = load_config(
        GeneratorConfig,
        environ={
            "CLIPMESH_GENERATOR_DATA_DIR": str(tmp_path / "generator"),
            "CLIPMESH_GENERATOR_POLICY_FILE": str(policy_file),
            "CLIPMESH_GENERATOR_WEBHOOK_INITIAL_BACKOFF_S": "0.2",
            "CLIPMESH_GENERATOR_WEBHOOK_MAX_BACKOFF_S": "1",
        },
    )
    async with serve_in_process(config, build(config)) as running:
        channel = open_aio_channel(running.target, ChannelPolicy(timeout_s=60, max_attempts=1))
        try:
            yield WebhookGateway(
                generator_pb2_grpc.GeneratorServiceStub(channel),
                running.metrics_port,
                config.data_dir / "jobs.sqlite3",
            )
        finally:
            await channel.close()


def webhook_request(
    url: str, *, key: str = "", prompt: str = "a lighthouse at dusk", **spec_fields
) -> generator_pb2.GenerateRequest:
    """A small animatic job (128x128, 1 s, 12 fps unless `spec_fields` say otherwise)."""
    fields = {"width": 128, "height": 128, "duration_s": 1.0, "fps": 12.0, **spec_fields}
    spec = generator_pb2.GenerationSpec(prompt=prompt, backend="animatic", **fields)
    return generator_pb2.GenerateRequest(spec=spec, idempotency_key=key, webhook_url=url)


def as_caller(caller: str) -> tuple[tuple[str, str], ...]:
    return (("x-clipmesh-caller", caller),)


async def run_job(gateway: WebhookGateway, url: str, caller: str = "team-a", **options):
    """Submits a job and follows it to its end; returns the job as it ended."""
    call = gateway.stub.Generate(webhook_request(url, **options), metadata=as_caller(caller))
    events = [response.event async for response in call]
    return events[-1].job


async def webhook_refusal(gateway: WebhookGateway, url: str, caller: str = "team-a", **options):
    """The error a submission with webhook `url` is refused with."""
    call = gateway.stub.Generate(webhook_request(url, **options), metadata=as_caller(caller))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in call:
            pass
    return client_errors.from_rpc_error(caught.value)


async def outbox_until(
    gateway: WebhookGateway, check: Callable[[list[dict]], bool], timeout_s: float = 60
) -> list[dict]:
    """The gateway's outbox rows (`tests.support.webhook_outbox`) once `check` holds for them."""
    deadline = time.monotonic() + timeout_s
    while not check(rows := await asyncio.to_thread(webhook_outbox, gateway.database)):
        assert time.monotonic() < deadline, f"the outbox never got there: {rows}"
        await asyncio.sleep(0.05)
    return rows


async def settled(gateway: WebhookGateway, count: int) -> list[dict]:
    """Every outbox row, once `count` events were delivered or given up."""
    return await outbox_until(
        gateway, lambda rows: sum(row["state"] != "pending" for row in rows) >= count
    )


def verified_by_both(secret: str, delivery: ReceivedWebhook) -> dict:
    """The event, once clipmesh's verifier and the Standard Webhooks reference both accept it."""
    verify(secret, delivery.headers, delivery.body, now=delivery.received_s)
    return standardwebhooks.Webhook(secret).verify(delivery.body, delivery.headers)
