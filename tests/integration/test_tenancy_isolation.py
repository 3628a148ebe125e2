"""Cross-tenant attempts on the secured shared mesh: another team's job, project, video or
collection, reached by id, by guess, by clip or by key. None succeeds, and none tells the
attempt apart from asking for something that does not exist."""

from __future__ import annotations

import asyncio
import os
import uuid

import grpc
import pytest
import pytest_asyncio

from clipmesh_api.common.v1 import common_pb2
from clipmesh_api.generator.v1 import generator_pb2
from clipmesh_api.orchestrator.v1 import account_pb2, ingest_pb2, previs_pb2, search_pb2
from clipmesh_client.status import decode_status
from clipmesh_client.wire import bearer_metadata
from tests.integration.tenancy_mesh import POLICY, TOKENS, generate, job_spec, tenancy_mesh

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory, mesh_ca):
    async with tenancy_mesh(tmp_path_factory.mktemp("isolation"), mesh_ca) as running:
        yield running


async def _refusal(call) -> tuple[str, str, str]:
    """(code, reason, message) of a call that must fail."""
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        answer = call
        if hasattr(answer, "__aiter__"):
            async for _ in answer:
                pass
        else:
            await answer
    details = decode_status(refused.value)
    return details.code.name, details.reason, details.message


def _owned_calls(world, caller: str, job_id: str, project_id: str):
    metadata = world.metadata(caller)
    gen, previs = world.generator, world.previs
    return {
        "GetJob": lambda: gen.GetJob(generator_pb2.GetJobRequest(job_id=job_id), metadata=metadata),
        "WatchJob": lambda: gen.WatchJob(
            generator_pb2.WatchJobRequest(job_id=job_id), metadata=metadata
        ),
        "CancelJob": lambda: gen.CancelJob(
            generator_pb2.CancelJobRequest(job_id=job_id), metadata=metadata
        ),
        "DownloadJobOutput": lambda: gen.DownloadJobOutput(
            generator_pb2.DownloadJobOutputRequest(job_id=job_id), metadata=metadata
        ),
        "DeleteJobOutput": lambda: gen.DeleteJobOutput(
            generator_pb2.DeleteJobOutputRequest(job_id=job_id), metadata=metadata
        ),
        "GetProject": lambda: previs.GetProject(
            previs_pb2.GetProjectRequest(project_id=project_id), metadata=metadata
        ),
        "ExportCut": lambda: previs.ExportCut(
            previs_pb2.ExportCutRequest(project_id=project_id), metadata=metadata
        ),
        "ReviewShot": lambda: previs.ReviewShot(
            previs_pb2.ReviewShotRequest(project_id=project_id, shot_id="s001", note="slower"),
            metadata=metadata,
        ),
    }


async def test_another_teams_job_or_project_is_answered_as_one_that_does_not_exist(world):
    theirs = world.teams["team-b"]
    guessed_job, guessed_project = uuid.uuid4().hex, f"p{uuid.uuid4().hex[:16]}"
    foreign = _owned_calls(world, "team-a", theirs.job_id, theirs.project_id)
    guesses = _owned_calls(world, "team-a", guessed_job, guessed_project)
    for name, call in foreign.items():
        code, reason, message = await _refusal(call())
        guess_code, guess_reason, guess_message = await _refusal(guesses[name]())
        assert (code, reason) == (guess_code, guess_reason) == ("NOT_FOUND", reason), name
        # The same words, but for the id asked about: nothing says the id exists.
        same = message.replace(theirs.job_id, "ID").replace(theirs.project_id, "ID")
        assert same == guess_message.replace(guessed_job, "ID").replace(guessed_project, "ID")
    # And team b's job is untouched by the attempts (not cancelled, output not deleted).
    job = await world.generator.GetJob(
        generator_pb2.GetJobRequest(job_id=theirs.job_id), metadata=world.metadata("team-b")
    )
    assert job.job.state == generator_pb2.JOB_STATE_SUCCEEDED and not job.job.output_deleted


async def test_a_clip_of_another_teams_video_cannot_be_searched_by(world):
    mine, theirs = world.teams["team-a"], world.teams["team-b"]

    def by_clip(collection: str, video_id: str) -> search_pb2.SearchVideosRequest:
        clip = search_pb2.ClipReference(video_id=video_id, span=common_pb2.TimeRange(end_s=2))
        return search_pb2.SearchVideosRequest(
            parts=[search_pb2.QueryPart(clip=clip)], collection=collection, budget_ms=30_000
        )

    metadata = world.metadata("team-a")
    # Named in team a's own collection: team b's video is simply not there.
    foreign = await _refusal(
        world.search.SearchVideos(by_clip(mine.collection, theirs.video_id), metadata=metadata)
    )
    guessed = await _refusal(
        world.search.SearchVideos(by_clip(mine.collection, "v" + "0" * 20), metadata=metadata)
    )
    assert foreign[:2] == guessed[:2] and foreign[0] == "NOT_FOUND"
    # Named in team b's collection: refused before anything is looked up.
    denied = await _refusal(
        world.search.SearchVideos(by_clip(theirs.collection, theirs.video_id), metadata=metadata)
    )
    assert denied[:2] == ("PERMISSION_DENIED", "MISSING_PERMISSION")


async def test_idempotency_keys_are_each_callers_own(world):
    key = f"shared-key-{uuid.uuid4().hex[:6]}"
    a = (await generate(world, "team-a", "a crane up over rooftops", idempotency_key=key))[-1]
    # Team b uses the same key for another request: a job of its own, no "key reused" hint.
    b = (await generate(world, "team-b", "a dolly along a pier", idempotency_key=key))[-1]
    assert a.job.job_id != b.job.job_id and b.job.caller == "team-b"
    again = (await generate(world, "team-a", "a crane up over rooftops", idempotency_key=key))[-1]
    assert again.job.job_id == a.job.job_id


async def test_a_caller_the_policy_does_not_name_can_only_ask_who_it_is(world):
    stranger = bearer_metadata("token-of-stranger")
    tokens = world.mesh.configs["orchestrator"].auth_tokens_file
    with open(tokens, "a", encoding="utf-8") as file:
        file.write("stranger:token-of-stranger\n")
    previs_tokens = world.mesh.configs["previs"].auth_tokens_file
    assert previs_tokens == tokens
    await asyncio.sleep(1.1)  # the tokens file is looked at once a second
    who = await world.account.GetCaller(account_pb2.GetCallerRequest(), metadata=stranger)
    assert who.caller == "stranger" and not who.grants and not who.admin
    listing = ingest_pb2.ListVideosRequest(collection=world.teams["team-a"].collection)
    denied = await _refusal(world.ingest.ListVideos(listing, metadata=stranger))
    assert denied[0] == "PERMISSION_DENIED"
    generate_call = world.generator.Generate(
        generator_pb2.GenerateRequest(spec=job_spec("x")), metadata=stranger
    )
    assert (await _refusal(generate_call))[0] == "PERMISSION_DENIED"


async def test_a_policy_change_applies_within_seconds_and_a_broken_one_changes_nothing(world):
    policy_file = world.mesh.configs["orchestrator"].policy_file
    listing = ingest_pb2.ListVideosRequest(collection=world.teams["team-a"].collection)
    as_b = world.metadata("team-b")
    assert (await _refusal(world.ingest.ListVideos(listing, metadata=as_b)))[0] == (
        "PERMISSION_DENIED"
    )
    widened = POLICY.replace('collections: ["team_b_*"]', 'collections: ["team_b_*", "team_a_*"]')
    try:
        _rewrite(policy_file, widened)
        answer = await _eventually(lambda: world.ingest.ListVideos(listing, metadata=as_b))
        assert world.teams["team-a"].video_id in {v.video_id for v in answer.videos}
        _rewrite(policy_file, "callers: {team-b: {grants: [{roles: [root]}]}}")  # broken
        await asyncio.sleep(1.5)
        still = await world.ingest.ListVideos(listing, metadata=as_b)  # the last good policy
        assert still.videos
    finally:
        _rewrite(policy_file, POLICY)
    await _eventually_refused(lambda: world.ingest.ListVideos(listing, metadata=as_b))
    assert TOKENS["team-b"]  # the token itself never changed


def _rewrite(path: str, text: str) -> None:
    """Replaces the file as a Secret update does: written aside, renamed over."""
    aside = f"{path}.new"
    with open(aside, "w", encoding="utf-8") as file:
        file.write(text)
    os.replace(aside, path)


async def _eventually(call, timeout_s: float = 10.0):
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            return await call()
        except grpc.aio.AioRpcError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)


async def _eventually_refused(call, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        try:
            await call()
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.PERMISSION_DENIED
            return
        await asyncio.sleep(0.2)
    raise AssertionError("the restored policy did not apply")
