"""Checking that a webhook came from clipmesh: Standard Webhooks signatures.

When a generation job that carries a `webhook_url` ends, clipmesh POSTs a JSON event to that
URL, signed as the Standard Webhooks specification says (https://www.standardwebhooks.com), so
any of its libraries verifies it as well as this module does. Verify every request before you
trust its body, with the `whsec_…` secret your clipmesh operator gave you:

    from clipmesh_client.webhooks import WebhookVerificationError, verify

    try:
        verify(WEBHOOK_SECRET, request.headers, request.body)  # the raw bytes, before parsing
    except WebhookVerificationError:
        return 401  # not from clipmesh, altered, or replayed long after it was sent

A request carries three headers: `webhook-id` (the same on every retry of one event: remember
the ids you have handled and skip repeats), `webhook-timestamp` (Unix seconds; `verify` refuses
one more than `tolerance_s` away from now, which bounds replays) and `webhook-signature`
(`v1,<base64 HMAC-SHA256>` once per secret in use: while an operator rotates your secret, either
the old or the new one verifies).

This module needs only the standard library.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Mapping, Sequence

SECRET_PREFIX = "whsec_"
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_S = 300

# An id may not hold the `.` that separates the signed fields, nor spaces or controls.
_MESSAGE_ID = re.compile(r"[\x21-\x2d\x2f-\x7e]{1,256}")


class WebhookVerificationError(Exception):
    """A webhook request did not verify: a header is missing or malformed, its timestamp is too
    far from now, or no signature matches the secret. Answer such a request 4xx and ignore it."""


def sign(keys: Sequence[bytes], message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The Standard Webhooks headers of one request: its id, timestamp and signatures.

    Args:
        keys: The HMAC keys (decoded `whsec_` secrets); each adds one signature.
        message_id: The event's id, the same on every retry of it (printable ASCII, no `.`).
        timestamp: When this attempt is sent, in Unix seconds.
        body: The exact bytes sent.

    Raises:
        ValueError: No key, an empty key, a malformed id or a negative timestamp.
    """
    if not keys or not all(keys):
        raise ValueError("signing needs at least one key, and no key may be empty")
    if not _MESSAGE_ID.fullmatch(message_id):
        raise ValueError("a webhook id is 1-256 printable ASCII characters without '.'")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise ValueError("a webhook timestamp is a non-negative whole number of Unix seconds")
    signatures = " ".join(
        f"{SIGNATURE_VERSION},{_signature(key, message_id, str(timestamp), body)}" for key in keys
    )
    return {
        ID_HEADER: message_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signatures,
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> None:
    """Checks that a webhook request was signed with `secret` and sent recently.

    Args:
        secret: Your Standard Webhooks secret, `whsec_<base64>`.
        headers: The request's headers (any mapping; names are matched case-insensitively).
        body: The request's body, exactly as received (not re-serialised JSON).
        tolerance_s: How far the request's timestamp may be from now, either way.
        now: The current Unix time; the system clock when None.

    Raises:
        WebhookVerificationError: The request is not a fresh webhook signed with `secret`.
        ValueError: `secret` is not a `whsec_` secret.
    """
    key = decode_secret(secret)
    lowered = {str(name).lower(): value for name, value in headers.items()}
    message_id, timestamp, signatures = (
        _header(lowered, name) for name in (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)
    )
    if not timestamp.isascii() or not timestamp.isdigit():
        raise WebhookVerificationError(f"{TIMESTAMP_HEADER} {timestamp[:32]!r} is not Unix seconds")
    age_s = (time.time() if now is None else now) - int(timestamp)
    if age_s > tolerance_s:
        raise WebhookVerificationError(
            f"{TIMESTAMP_HEADER} is {age_s:.0f} s old; at most {tolerance_s} s is accepted"
        )
    if -age_s > tolerance_s:
        raise WebhookVerificationError(
            f"{TIMESTAMP_HEADER} is {-age_s:.0f} s in the future; at most {tolerance_s} s is "
            "accepted (is a clock wrong?)"
        )
    expected = base64.b64decode(_signature(key, message_id, timestamp, body))
    for entry in signatures.split():
        version, _, encoded = entry.partition(",")
        if version != SIGNATURE_VERSION:
            continue  # another scheme's signature (e.g. v1a), or a malformed entry
        try:
            candidate = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        if hmac.compare_digest(candidate, expected):
            return
    raise WebhookVerificationError(f"no {SIGNATURE_HEADER} matches the secret")


def decode_secret(secret: str) -> bytes:
    """The HMAC key a `whsec_<base64>` secret holds.

    Raises:
        ValueError: `secret` is not `whsec_` followed by non-empty base64.
    """
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a webhook secret is `{SECRET_PREFIX}<base64>`")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("the webhook secret is not valid base64") from exc
    if not key:
        raise ValueError("the webhook secret is empty")
    return key


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if not value:
        raise WebhookVerificationError(f"the {name} header is missing")
    return value


def _signature(key: bytes, message_id: str, timestamp: str, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode("ascii")
