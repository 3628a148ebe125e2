"""Every public RPC × four callers × each team's resources, on a mesh secured as in production
(mTLS inside, TLS and tokens at the front doors, one policy): allowed, denied or not found,
exactly as the policy says — written out here by hand, not derived from the policy code.

Callers: team-a and team-b (search, ingest, delete, previs in their own `team_x_*` collections;
generate), ops (admin), reader (search in team a's collections only).
"""

from __future__ import annotations

import grpc
import pytest
import pytest_asyncio

from clipmesh_api.common.v1 import common_pb2
from clipmesh_api.generator.v1 import generator_pb2
from clipmesh_api.orchestrator.v1 import (
    account_pb2,
    ingest_pb2,
    previs_pb2,
    search_pb2,
)
from clipmesh_client.status import decode_status
from tests.integration.tenancy_mesh import CALLERS, TEAMS, create_project, generate, tenancy_mesh

pytestmark = pytest.mark.asyncio(loop_scope="module")
OK, DENIED, NOT_FOUND = "OK", "PERMISSION_DENIED", "NOT_FOUND"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory, mesh_ca):
    async with tenancy_mesh(tmp_path_factory.mktemp("tenancy"), mesh_ca) as running:
        yield running


# What the policy grants, written out: a team everything in its own collections and generation;
# ops everything; reader only search in team a's.
def holds(caller: str, role: str, team: str | None = None) -> bool:
    if caller == "ops":
        return True
    if caller == "reader":
        return role == "search" and team == "team-a"
    return role == "generate" or team == caller


def sees(caller: str, team: str) -> bool:
    """Whose jobs and projects a caller sees: its own; ops every one."""
    return caller in (team, "ops")


# Each call makes one RPC as `caller` on `team`'s resources and consumes its answer.


async def search(w, caller, team):
    data = w.teams[team]
    request = search_pb2.SearchVideosRequest(
        parts=[search_pb2.QueryPart(text="a harbour")], collection=data.collection, budget_ms=30_000
    )
    await w.search.SearchVideos(request, metadata=w.metadata(caller))


async def ingest(w, caller, team):
    data = w.teams[team]
    request = ingest_pb2.IngestVideosRequest(
        items=[ingest_pb2.IngestItem(uri=data.video_uri)], collection=data.collection
    )
    async for _ in w.ingest.IngestVideos(request, metadata=w.metadata(caller)):
        pass


async def delete_videos(w, caller, team):
    # A video that is not there: the call is allowed or not, and nothing is lost either way.
    request = ingest_pb2.DeleteVideosRequest(
        collection=w.teams[team].collection, video_ids=["v00000000000000000000"]
    )
    await w.ingest.DeleteVideos(request, metadata=w.metadata(caller))


async def get_video(w, caller, team):
    data = w.teams[team]
    request = ingest_pb2.GetVideoRequest(collection=data.collection, video_id=data.video_id)
    await w.ingest.GetVideo(request, metadata=w.metadata(caller))


async def list_videos(w, caller, team):
    request = ingest_pb2.ListVideosRequest(collection=w.teams[team].collection)
    answer = await w.ingest.ListVideos(request, metadata=w.metadata(caller))
    assert w.teams[team].video_id in {v.video_id for v in answer.videos}


async def generate_job(w, caller, _team):
    events = await generate(w, caller, f"{caller}: rain on a window")
    assert events[-1].job.caller == caller


async def list_jobs(w, caller, _team):
    answer = await w.generator.ListJobs(
        generator_pb2.ListJobsRequest(), metadata=w.metadata(caller)
    )
    owners = {job.caller for job in answer.jobs}
    if caller == "ops":
        assert {"team-a", "team-b"} <= owners, owners  # every caller's
    else:
        assert owners == {caller}, owners


async def get_usage(w, caller, _team):
    answer = await w.generator.GetUsage(
        generator_pb2.GetUsageRequest(), metadata=w.metadata(caller)
    )
    assert answer.caller == caller


async def get_caller(w, caller, _team):
    answer = await w.account.GetCaller(account_pb2.GetCallerRequest(), metadata=w.metadata(caller))
    assert (answer.caller, answer.admin, answer.authorization_enabled) == (
        caller,
        caller == "ops",
        True,
    )


def _job_call(method: str, request_type):
    async def call(w, caller, team):
        request = request_type(job_id=w.teams[team].job_id)
        answer = getattr(w.generator, method)(request, metadata=w.metadata(caller))
        if hasattr(answer, "__aiter__"):
            async for _ in answer:
                pass
        else:
            await answer

    return call


async def create(w, caller, team):
    await create_project(w, caller, w.teams[team].collection, wait=False)


async def review_shot(w, caller, team):
    data = w.teams[team]
    request = previs_pb2.ReviewShotRequest(
        project_id=data.project_id, shot_id=data.shot_id, select_clip=0
    )
    async for _ in w.previs.ReviewShot(request, metadata=w.metadata(caller)):
        pass


async def get_project(w, caller, team):
    request = previs_pb2.GetProjectRequest(project_id=w.teams[team].project_id)
    answer = await w.previs.GetProject(request, metadata=w.metadata(caller))
    assert answer.project.owner == team


async def export_cut(w, caller, team):
    request = previs_pb2.ExportCutRequest(project_id=w.teams[team].project_id)
    await w.previs.ExportCut(request, metadata=w.metadata(caller))


# (RPC, call, the role it needs, how it reaches a team's resources: "collection", "owned" or
# None). DeleteJobOutput comes last: it removes what DownloadJobOutput reads.
RPCS = [
    ("SearchVideos", search, "search", "collection"),
    ("IngestVideos", ingest, "ingest", "collection"),
    ("DeleteVideos", delete_videos, "delete", "collection"),
    ("GetVideo", get_video, "search", "collection"),
    ("ListVideos", list_videos, "search", "collection"),
    ("Generate", generate_job, "generate", None),
    ("ListJobs", list_jobs, "generate", None),
    ("GetUsage", get_usage, "", None),
    ("GetCaller", get_caller, "", None),
    ("GetJob", _job_call("GetJob", generator_pb2.GetJobRequest), "generate", "owned"),
    ("WatchJob", _job_call("WatchJob", generator_pb2.WatchJobRequest), "generate", "owned"),
    ("CancelJob", _job_call("CancelJob", generator_pb2.CancelJobRequest), "generate", "owned"),
    (
        "DownloadJobOutput",
        _job_call("DownloadJobOutput", generator_pb2.DownloadJobOutputRequest),
        "generate",
        "owned",
    ),
    ("GetProject", get_project, "previs", "owned"),
    ("ExportCut", export_cut, "previs", "owned"),
    ("ReviewShot", review_shot, "previs", "owned"),
    ("CreateProject", create, "previs", "collection"),
    (
        "DeleteJobOutput",
        _job_call("DeleteJobOutput", generator_pb2.DeleteJobOutputRequest),
        "generate",
        "owned",
    ),
]


def expected(caller: str, role: str, reach: str | None, team: str | None) -> str:
    if not role:
        return OK
    if reach == "collection":
        return OK if holds(caller, role, team) else DENIED
    if not holds(caller, role, caller):
        return DENIED
    if reach == "owned":
        return OK if sees(caller, team) else NOT_FOUND
    return OK


async def test_every_public_rpc_answers_each_caller_as_the_policy_says(world, capsys) -> None:
    cells, wrong = 0, []
    for name, call, role, reach in RPCS:
        for caller in CALLERS:
            for team in TEAMS if reach else (None,):
                want = expected(caller, role, reach, team)
                try:
                    await call(world, caller, team)
                    got, details = OK, None
                except grpc.aio.AioRpcError as error:
                    got, details = error.code().name, decode_status(error)
                cells += 1
                if got != want:
                    wrong.append(f"{name} as {caller} on {team}: {got}, expected {want}")
                elif got == DENIED:
                    # The refusal names what is missing, and where.
                    assert details.reason == "MISSING_PERMISSION", details
                    assert details.metadata["permission"] == role, details
                    if reach == "collection":
                        assert details.metadata["collection"] == world.teams[team].collection
    with capsys.disabled():
        print(f"\ntenancy matrix: {len(RPCS)} RPCs x {len(CALLERS)} callers x own/other: {cells}")
    assert not wrong, "\n".join(wrong)


async def test_no_rpc_is_left_without_a_declared_rule(world) -> None:
    """Every method the public ports serve declares an access rule: the matrix covers them."""
    from clipmesh.runtime.access import access_rule

    served = {
        "clipmesh.orchestrator.v1.SearchService": ["SearchVideos"],
        "clipmesh.orchestrator.v1.IngestService": [
            "IngestVideos",
            "DeleteVideos",
            "GetVideo",
            "ListVideos",
        ],
        "clipmesh.orchestrator.v1.AccountService": ["GetCaller"],
        "clipmesh.orchestrator.v1.PrevisService": [
            "CreateProject",
            "ReviewShot",
            "GetProject",
            "ExportCut",
        ],
    }
    from clipmesh_api.generator.v1 import generator_pb2 as gen

    service = gen.DESCRIPTOR.services_by_name["GeneratorService"]
    served[service.full_name] = [m.name for m in service.methods]
    methods = {f"/{s}/{m}" for s, names in served.items() for m in names}
    assert all(access_rule(m) is not None for m in methods)
    assert {name for name, *_ in RPCS} == {m.rsplit("/", 1)[1] for m in methods}


async def test_filters_and_listings_stay_inside_the_callers_collection(world) -> None:
    a, b = world.teams["team-a"], world.teams["team-b"]
    reaching = common_pb2.MetadataFilter(
        clauses=[common_pb2.FilterClause(field="video_id", equals=b.video_id)]
    )
    answer = await world.ingest.ListVideos(
        ingest_pb2.ListVideosRequest(collection=a.collection, filter=reaching),
        metadata=world.metadata("team-a"),
    )
    assert not answer.videos
    search = search_pb2.SearchVideosRequest(
        parts=[search_pb2.QueryPart(text="a harbour")], collection=a.collection, budget_ms=30_000
    )
    hits = await world.search.SearchVideos(search, metadata=world.metadata("team-a"))
    assert {hit.video.collection for hit in hits.hits} <= {a.collection}
