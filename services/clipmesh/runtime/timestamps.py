"""Unix seconds in domain records ↔ `google.protobuf.Timestamp` in the API, exactly.

Domain records keep times as float seconds (0: not set); the split into whole seconds and
nanoseconds keeps a round trip exact to the nanosecond a float can hold.
"""

from __future__ import annotations

import math

from google.protobuf import timestamp_pb2
from google.protobuf.message import Message


def timestamp(seconds: float) -> timestamp_pb2.Timestamp | None:
    """The API form of a time; None (the field stays unset) for 0."""
    if not seconds:
        return None
    whole = math.floor(seconds)
    nanos = round((seconds - whole) * 1e9)
    if nanos >= 1_000_000_000:
        whole, nanos = whole + 1, nanos - 1_000_000_000
    return timestamp_pb2.Timestamp(seconds=whole, nanos=nanos)


def seconds_of(message: Message, name: str) -> float:
    """The time in `message`'s Timestamp field `name`; 0 when it is not set."""
    if not message.HasField(name):
        return 0.0
    stamp = getattr(message, name)
    return stamp.seconds + stamp.nanos / 1e9
