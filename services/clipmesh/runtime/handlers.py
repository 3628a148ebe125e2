"""Wrapping gRPC method handlers, for server interceptors that act around every RPC.

A `grpc.aio.ServerInterceptor` gets a method handler and may return a new one whose behaviour
wraps the original. The four RPC shapes need different wrappers; this module keeps that
plumbing in one place so each interceptor only says what to do around a call.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.descriptor import MethodDescriptor

Behavior = Callable[[Any, grpc.aio.ServicerContext], Any]
UnaryWrapper = Callable[[Behavior], Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]]
StreamWrapper = Callable[[Behavior], Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]]


async def call_unary(behavior: Behavior, request: Any, context: grpc.aio.ServicerContext) -> Any:
    """Runs a unary-response behaviour, sync or async."""
    result = behavior(request, context)
    if inspect.isawaitable(result):
        result = await result
    return result


async def iterate_stream(
    behavior: Behavior, request: Any, context: grpc.aio.ServicerContext
) -> AsyncIterator[Any]:
    """Runs a streaming-response behaviour (async generator, sync iterable, or coroutine)."""
    result = behavior(request, context)
    if inspect.isawaitable(result):
        result = await result
    if result is None:
        return
    if hasattr(result, "__aiter__"):
        async for item in result:
            yield item
    else:
        for item in result:
            yield item


def rewrap(
    handler: grpc.RpcMethodHandler,
    wrap_unary: UnaryWrapper,
    wrap_stream: StreamWrapper,
    *,
    request_deserializer: Callable[[bytes], Any] | None = None,
) -> grpc.RpcMethodHandler:
    """Returns `handler` with its behaviour wrapped according to its response shape, and its
    request deserializer replaced when one is given."""
    common = {
        "request_deserializer": request_deserializer or handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(wrap_unary(handler.unary_unary), **common)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(wrap_stream(handler.unary_stream), **common)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(wrap_unary(handler.stream_unary), **common)
    return grpc.stream_stream_rpc_method_handler(wrap_stream(handler.stream_stream), **common)


# (requests streamed, responses streamed) → the RPC's shape as Prometheus's gRPC conventions
# name it.
_RPC_TYPES = {
    (False, False): "unary",
    (False, True): "server_stream",
    (True, False): "client_stream",
    (True, True): "bidi_stream",
}


def rpc_type(handler: grpc.RpcMethodHandler) -> str:
    """The RPC's shape as Prometheus's gRPC conventions name it."""
    return _RPC_TYPES[(bool(handler.request_streaming), bool(handler.response_streaming))]


def declared_rpc_type(method: MethodDescriptor) -> str:
    """The shape of `method` as its .proto declares it, named as `rpc_type` names it."""
    return _RPC_TYPES[(method.client_streaming, method.server_streaming)]


def split_method(full_method: str) -> tuple[str, str]:
    """`/pkg.Service/Method` → (`pkg.Service`, `Method`)."""
    service, _, method = full_method.lstrip("/").partition("/")
    return service, method
