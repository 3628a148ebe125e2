"""A mesh secured as production runs it, shared by several teams: the tenancy tests' world.

Encoder, index and generator require client certificates (mTLS); the orchestrator and previs
serve TLS and require tokens; the orchestrator, previs and the generator read one policy. Four
callers: two teams, each owning its `team_x_*` collections, an admin, and a reader who may only
search team a's collections. Each team has ingested one video, generated one job and created
one previs project, so every public RPC has something of each team's to reach for.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from clipmesh.cli.certs import DevCredentials
from clipmesh.demo.library import make_library
from clipmesh_api.generator.v1 import generator_pb2, generator_pb2_grpc
from clipmesh_api.orchestrator.v1 import (
    account_pb2_grpc,
    ingest_pb2,
    ingest_pb2_grpc,
    previs_pb2,
    previs_pb2_grpc,
    search_pb2_grpc,
)
from clipmesh_client import tls_credentials
from clipmesh_client.wire import ChannelPolicy, bearer_metadata, open_aio_channel
from tests.integration.conftest import tls_env
from tests.mesh import in_process_mesh

TEAMS = ("team-a", "team-b")
CALLERS = ("team-a", "team-b", "ops", "reader")
TOKENS = {caller: f"token-of-{caller}" for caller in CALLERS}
COLLECTION = {team: f"{team.replace('-', '_')}_clips" for team in TEAMS}
SIZE = {"width": 256, "height": 144, "fps": 12.0}

POLICY = """
version: 1
defaults:
  quotas: {concurrent_jobs: 20}
callers:
  team-a:
    grants:
      - roles: [search, ingest, delete, previs]
        collections: ["team_a_*"]
      - roles: [generate]
  team-b:
    grants:
      - roles: [search, ingest, delete, previs]
        collections: ["team_b_*"]
      - roles: [generate]
  ops:
    grants: [{roles: [admin]}]
  reader:
    grants:
      - roles: [search]
        collections: ["team_a_*"]
"""


@dataclass
class TeamData:
    """What one team made while the mesh was set up."""

    collection: str
    video_id: str
    video_uri: str
    job_id: str
    project_id: str
    shot_id: str


@dataclass
class TenancyMesh:
    """The running mesh, one channel to each front door, and each team's data."""

    mesh: Any
    public: grpc.aio.Channel
    previs_channel: grpc.aio.Channel
    teams: dict[str, TeamData] = field(default_factory=dict)

    def metadata(self, caller: str) -> tuple[tuple[str, str], ...]:
        return bearer_metadata(TOKENS[caller])

    @property
    def search(self) -> search_pb2_grpc.SearchServiceStub:
        return search_pb2_grpc.SearchServiceStub(self.public)

    @property
    def ingest(self) -> ingest_pb2_grpc.IngestServiceStub:
        return ingest_pb2_grpc.IngestServiceStub(self.public)

    @property
    def generator(self) -> generator_pb2_grpc.GeneratorServiceStub:
        return generator_pb2_grpc.GeneratorServiceStub(self.public)

    @property
    def account(self) -> account_pb2_grpc.AccountServiceStub:
        return account_pb2_grpc.AccountServiceStub(self.public)

    @property
    def previs(self) -> previs_pb2_grpc.PrevisServiceStub:
        return previs_pb2_grpc.PrevisServiceStub(self.previs_channel)


def tenancy_environ(
    state: Path, ca: DevCredentials, *, policy: str = POLICY, media_root: Path | None = None
) -> dict[str, dict[str, str]]:
    """Every service's settings: TLS as in production, tokens and the policy at the front
    doors, the policy at the generator."""
    tokens = state / "tokens.txt"
    tokens.write_text("".join(f"{caller}:{token}\n" for caller, token in TOKENS.items()))
    policy_file = state / "policy.yaml"
    policy_file.write_text(policy)
    front = {"AUTH_TOKENS_FILE": str(tokens), "POLICY_FILE": str(policy_file)}
    environ = {
        "encoder": tls_env("encoder", ca, client_auth=True),
        "index": tls_env("index", ca, client_auth=True),
        "generator": {
            **tls_env("generator", ca, client_auth=True),
            "CLIPMESH_GENERATOR_POLICY_FILE": str(policy_file),
            "CLIPMESH_GENERATOR_ANIMATIC_MAX_CONCURRENT": "2",
        },
        "orchestrator": tls_env("orchestrator", ca, client_auth=False),
        "previs": tls_env("previs", ca, client_auth=False),
    }
    for service in ("orchestrator", "previs"):
        prefix = f"CLIPMESH_{service.upper()}_"
        environ[service].update({prefix + name: value for name, value in front.items()})
    if media_root is not None:
        environ["orchestrator"]["CLIPMESH_ORCHESTRATOR_ALLOWED_ROOTS"] = str(media_root)
    return environ


@contextlib.asynccontextmanager
async def tenancy_mesh(
    state: Path, ca: DevCredentials, *, policy: str = POLICY, with_team_data: bool = True
) -> AsyncIterator[TenancyMesh]:
    """Starts the five services secured and shared; with `with_team_data`, each team ingests
    a video, generates a job and creates a one-shot project first."""
    media = state / "media"
    environ = tenancy_environ(state, ca, policy=policy, media_root=media)
    services = ("encoder", "index", "generator", "orchestrator", "previs")
    async with in_process_mesh(state, services, env=environ) as mesh:
        credentials = tls_credentials(ca.ca_file)
        calls = ChannelPolicy(timeout_s=300, max_attempts=1)
        public = open_aio_channel(mesh.target("orchestrator"), calls, credentials=credentials)
        previs = open_aio_channel(mesh.target("previs"), calls, credentials=credentials)
        world = TenancyMesh(mesh, public, previs)
        try:
            if with_team_data:
                videos = make_library(media, count=len(TEAMS), seed=11)
                for team, video in zip(TEAMS, videos, strict=True):
                    world.teams[team] = await _team_data(world, team, video.path)
            yield world
        finally:
            await public.close()
            await previs.close()


async def _team_data(world: TenancyMesh, team: str, video: Path) -> TeamData:
    metadata = world.metadata(team)
    collection = COLLECTION[team]
    request = ingest_pb2.IngestVideosRequest(
        items=[ingest_pb2.IngestItem(uri=str(video))], collection=collection
    )
    events = [e async for e in world.ingest.IngestVideos(request, metadata=metadata)]
    done = [e.progress for e in events if e.WhichOneof("event") == "progress"][-1]
    assert done.stage == ingest_pb2.INGEST_STAGE_DONE, done
    job = (await generate(world, team, f"{team}: a lighthouse at dusk"))[-1].job
    assert job.state == generator_pb2.JOB_STATE_SUCCEEDED, job
    project = await create_project(world, team, collection)
    return TeamData(
        collection,
        done.video_id,
        video.as_uri(),
        job.job_id,
        project.project_id,
        project.shots[0].shot_id,
    )


def job_spec(prompt: str) -> generator_pb2.GenerationSpec:
    return generator_pb2.GenerationSpec(prompt=prompt, duration_s=1.0, **SIZE)


async def generate(world: TenancyMesh, caller: str, prompt: str, **request: Any) -> list:
    """Generates on the public API as `caller`; the job's events until it ends."""
    call = world.generator.Generate(
        generator_pb2.GenerateRequest(spec=job_spec(prompt), **request),
        metadata=world.metadata(caller),
    )
    return [response.event async for response in call]


async def create_project(
    world: TenancyMesh, caller: str, collection: str, *, wait: bool = True
) -> previs_pb2.Project | None:
    """A one-shot previs project of `caller` feeding `collection`; with `wait`, its final state
    (else only its first report is read: the run goes on without its caller)."""
    request = previs_pb2.CreateProjectRequest(
        title=f"{caller} test",
        script="A man runs along the harbour.",
        collection=collection,
        **SIZE,
    )
    call = world.previs.CreateProject(request, metadata=world.metadata(caller))
    last = None
    async for response in call:
        last = response.progress
        if not wait:
            call.cancel()
            return None
    return last.project
