"""gRPC servicer of the encoder: translates proto ↔ domain.

Its RPCs answer UNIMPLEMENTED (through the runtime's error mapping of the generated base
class) until the encoding core lands.
"""

from __future__ import annotations

from clipmesh_api.encoder.v1 import encoder_pb2_grpc


class EncoderServicer(encoder_pb2_grpc.EncoderServiceServicer):
    """Serves EncoderService."""
