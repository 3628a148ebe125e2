"""A dependency that accepts connections and then never answers: every search through the
orchestrator still ends by its budget, and the orchestrator stays healthy.

Three ways of never answering: a TCP listener that never speaks HTTP/2 (the gRPC handshake
never completes), and a gRPC server whose handlers never return, in place of the encoder and
in place of the index. tests/integration/test_orchestrator_search.py has the in-process
stalled-encoder case; here the orchestrator is the real process.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest

from clipmesh.cli.probe import health_status
from clipmesh_api.encoder.v1 import encoder_pb2, encoder_pb2_grpc
from clipmesh_client import Client, ClipmeshError
from tests.fault.conftest import SEARCH_BUDGET_MS

SLACK_S = 0.5
SEARCHES = 6
SHORT_BUDGET_MS = 200  # every other search asks for less than the default budget


@contextlib.contextmanager
def silent_listener(held: list[socket.socket]) -> Iterator[str]:
    """A TCP port that accepts connections into `held`, reads nothing and writes nothing."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(0.1)
        closing = threading.Event()

        def accept() -> None:
            while not closing.is_set():
                with contextlib.suppress(TimeoutError):
                    held.append(server.accept()[0])

        acceptor = threading.Thread(target=accept, daemon=True)
        acceptor.start()
        try:
            yield f"127.0.0.1:{server.getsockname()[1]}"
        finally:
            closing.set()
            acceptor.join()
            for connection in held:
                connection.close()


class NeverAnswer(grpc.GenericRpcHandler):
    """Takes every call of every method and holds it until the caller gives up."""

    def __init__(self) -> None:
        self.calls: list[str] = []  # the methods called, in order

    def service(self, handler_call_details):
        self.calls.append(handler_call_details.method)

        def hold(request: bytes, context: grpc.ServicerContext) -> bytes:
            while context.is_active():
                time.sleep(0.05)
            return b""

        return grpc.unary_unary_rpc_method_handler(hold)


class ConstantEncoder(encoder_pb2_grpc.EncoderServiceServicer):
    """An encoder that answers every text at once with the same unit vector."""

    def EmbedTexts(self, request, context):
        vector = [1.0] + [0.0] * 31
        return encoder_pb2.EmbedTextsResponse(
            model_id="constant",
            dimension=len(vector),
            embeddings=[encoder_pb2.Embedding(vector=vector) for _ in request.texts],
        )


@contextlib.contextmanager
def grpc_server(handler: grpc.GenericRpcHandler | None = None, encoder=None) -> Iterator[str]:
    """A gRPC server on a free loopback port, with a generic handler or an encoder servicer."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    if handler is not None:
        server.add_generic_rpc_handlers((handler,))
    if encoder is not None:
        encoder_pb2_grpc.add_EncoderServiceServicer_to_server(encoder, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(0)


@contextlib.contextmanager
def dependencies(case: str) -> Iterator[tuple[dict[str, str], list]]:
    """The orchestrator's environment for `case` (which dependency never answers, and how),
    and the list of what that dependency received: connections, or calls."""
    received: list = []
    with contextlib.ExitStack() as stack:
        if case == "encoder: TCP without HTTP/2":
            targets = {"ENCODER": stack.enter_context(silent_listener(received))}
        else:
            never = NeverAnswer()
            received = never.calls
            if case == "encoder: gRPC handlers never return":
                targets = {"ENCODER": stack.enter_context(grpc_server(never))}
            else:  # "index: gRPC handlers never return"
                targets = {
                    "ENCODER": stack.enter_context(grpc_server(encoder=ConstantEncoder())),
                    "INDEX": stack.enter_context(grpc_server(never)),
                }
        env = {f"CLIPMESH_ORCHESTRATOR_{name}_TARGET": t for name, t in targets.items()}
        yield env, received


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "case",
    [
        "encoder: TCP without HTTP/2",
        "encoder: gRPC handlers never return",
        "index: gRPC handlers never return",
    ],
)
def test_searches_end_by_their_budget_when_a_dependency_never_answers(start_services, case) -> None:
    with dependencies(case) as (env, received):
        (orchestrator,) = start_services("orchestrator", env=env)
        codes: Counter[str] = Counter()
        overruns_s: list[float] = []
        with Client(orchestrator.target, timeout_s=10, max_attempts=1) as client:
            for number in range(SEARCHES):
                budget_ms = SHORT_BUDGET_MS if number % 2 else 0
                started = time.monotonic()
                with pytest.raises(ClipmeshError) as refused:
                    client.search(text=f"a lighthouse {number}", budget_ms=budget_ms)
                elapsed_s = time.monotonic() - started
                codes[refused.value.code.name] += 1
                overruns_s.append(elapsed_s - (budget_ms or SEARCH_BUDGET_MS) / 1000)
        health = health_status(orchestrator.target)
        reached = len(received)

    print(
        f"{case}: searches: {SEARCHES}, ended: {dict(codes)}, connections or calls it received: "
        f"{reached}, most past the budget: {max(overruns_s) * 1000:.0f} ms, orchestrator {health}"
    )
    assert reached >= 1, "the search never reached the unanswering dependency"
    assert set(codes) <= {"DEADLINE_EXCEEDED", "UNAVAILABLE"}, codes
    assert max(overruns_s) <= SLACK_S, "a search outlived its budget"
    assert orchestrator.running
    assert health == "SERVING"
