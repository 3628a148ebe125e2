"""Server reflection, served as both `grpc.reflection.v1` and the older `v1alpha`.

Generic tools (grpcurl, Postman, grpc-js reflection clients) ask for v1 first and fall back to
v1alpha; some newer ones ask only for v1. grpcio-reflection ships only v1alpha. The two
versions are the same protocol: v1 is v1alpha's `reflection.proto` with the package renamed,
every message and field number unchanged. So v1 is served by the same servicer, and its
schema is derived from the installed v1alpha descriptor (renaming the package and the type
references) rather than copied by hand: a client asking v1 for the file that defines
`grpc.reflection.v1.ServerReflection` gets a well-formed one.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

V1ALPHA_SERVICE_NAME = reflection.SERVICE_NAME
V1_PACKAGE = "grpc.reflection.v1"
V1_SERVICE_NAME = f"{V1_PACKAGE}.ServerReflection"
V1_FILE_NAME = "grpc/reflection/v1/reflection.proto"
SERVICE_NAMES = (V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME)
# Health and reflection: what probes, load balancers and discovery tools call. Auth, the access
# policy and admission control let them through (they expose no application data).
HEALTH_AND_REFLECTION = frozenset(
    {health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, *SERVICE_NAMES}
)
_METHOD = "ServerReflectionInfo"
V1_METHOD_PATH = f"/{V1_SERVICE_NAME}/{_METHOD}"


def _v1_file() -> descriptor_pb2.FileDescriptorProto:
    """v1alpha's file descriptor under v1's file name and package."""
    alpha = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(alpha)
    old_prefix, new_prefix = f".{alpha.package}.", f".{V1_PACKAGE}."
    v1 = descriptor_pb2.FileDescriptorProto()
    v1.CopyFrom(alpha)
    v1.name, v1.package = V1_FILE_NAME, V1_PACKAGE
    v1.ClearField("options")  # v1alpha's options name v1alpha's Java and C# packages
    for message in v1.message_type:
        for field in message.field:
            if field.type_name.startswith(old_prefix):
                field.type_name = new_prefix + field.type_name[len(old_prefix) :]
    for service in v1.service:
        for method in service.method:
            method.input_type = method.input_type.replace(old_prefix, new_prefix, 1)
            method.output_type = method.output_type.replace(old_prefix, new_prefix, 1)
    return v1


def _registered_v1_file():
    """The v1 file in the default pool (where reflection looks symbols up), added once."""
    pool = descriptor_pool.Default()
    try:
        return pool.FindFileByName(V1_FILE_NAME)
    except KeyError:
        return pool.AddSerializedFile(_v1_file().SerializeToString())


_V1_FILE = _registered_v1_file()
# v1's own message classes, for clients in this package that speak v1 (cli/probe.py).
ServerReflectionRequest = message_factory.GetMessageClass(
    _V1_FILE.message_types_by_name["ServerReflectionRequest"]
)
ServerReflectionResponse = message_factory.GetMessageClass(
    _V1_FILE.message_types_by_name["ServerReflectionResponse"]
)


def enable_reflection(service_names: Iterable[str], server: grpc.aio.Server) -> None:
    """Serves reflection v1 and v1alpha on `server`, both listing `service_names` and themselves."""
    names = [*service_names, *SERVICE_NAMES]
    servicer = reflection.aio.ReflectionServicer(names)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    # Same servicer, v1alpha's (identical) wire types: the bytes on the wire are v1's.
    v1_handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(V1_SERVICE_NAME, {_METHOD: v1_handler}),)
    )
