"""Webhook signatures as the Standard Webhooks specification defines them: what clipmesh signs
verifies with the reference implementation (`standardwebhooks`) and with the SDK, and what is
altered, stale or signed with another secret does not."""

from __future__ import annotations

import base64
import datetime
import time

import pytest
import standardwebhooks

from clipmesh.runtime.policy import decode_webhook_secret
from clipmesh_client.webhooks import WebhookVerificationError, sign, verify

OLD_SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
NEW_SECRET = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"\x07" * 32).decode()
BODY = b'{"type":"job.succeeded","job_id":"j7","result":{"uri":"clipmesh://jobs/j7"}}'
SENT_AT = 1_767_225_600  # 2026-01-01T00:00:00Z


def key(secret: str) -> bytes:
    return decode_webhook_secret(secret, "test")


def signed(*secrets: str, timestamp: int = SENT_AT, body: bytes = BODY) -> dict[str, str]:
    return sign([key(s) for s in secrets], "msg_2kQ9f", timestamp, body)


def test_sign_writes_the_three_standard_headers() -> None:
    headers = signed(OLD_SECRET)
    assert headers.keys() == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-id"] == "msg_2kQ9f"
    assert headers["webhook-timestamp"] == str(SENT_AT)
    version, signature = headers["webhook-signature"].split(",")
    assert version == "v1"
    assert len(base64.b64decode(signature, validate=True)) == 32  # HMAC-SHA256


def test_what_is_signed_verifies() -> None:
    verify(OLD_SECRET, signed(OLD_SECRET), BODY, now=SENT_AT + 10)


def test_the_reference_implementation_verifies_what_clipmesh_signs() -> None:
    now = int(time.time())  # the reference implementation reads the clock itself
    headers = signed(OLD_SECRET, NEW_SECRET, timestamp=now)
    for secret in (OLD_SECRET, NEW_SECRET):
        event = standardwebhooks.Webhook(secret).verify(BODY, headers)
        assert event["job_id"] == "j7"
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(OTHER_SECRET).verify(BODY, headers)


def test_the_sdk_verifies_what_the_reference_implementation_signs() -> None:
    sent_at = datetime.datetime.fromtimestamp(SENT_AT, tz=datetime.UTC)
    signature = standardwebhooks.Webhook(OLD_SECRET).sign("msg_ref", sent_at, BODY.decode())
    headers = {
        "Webhook-Id": "msg_ref",
        "Webhook-Timestamp": str(SENT_AT),
        "Webhook-Signature": signature,
    }
    verify(OLD_SECRET, headers, BODY, now=SENT_AT)
    with pytest.raises(WebhookVerificationError):
        verify(NEW_SECRET, headers, BODY, now=SENT_AT)


def test_during_a_rotation_either_secret_verifies() -> None:
    headers = signed(OLD_SECRET, NEW_SECRET)
    assert len(headers["webhook-signature"].split(" ")) == 2
    verify(OLD_SECRET, headers, BODY, now=SENT_AT)
    verify(NEW_SECRET, headers, BODY, now=SENT_AT)
    with pytest.raises(WebhookVerificationError, match="no webhook-signature matches"):
        verify(OTHER_SECRET, headers, BODY, now=SENT_AT)


def test_header_names_match_in_any_case() -> None:
    headers = {name.upper(): value for name, value in signed(OLD_SECRET).items()}
    verify(OLD_SECRET, headers, BODY, now=SENT_AT)


@pytest.mark.parametrize(
    "body",
    [
        BODY.replace(b"succeeded", b"cancelled"),
        BODY + b" ",
        BODY[:-1],
        b"",
    ],
)
def test_an_altered_body_is_refused(body: bytes) -> None:
    with pytest.raises(WebhookVerificationError, match="no webhook-signature matches"):
        verify(OLD_SECRET, signed(OLD_SECRET), body, now=SENT_AT)


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("webhook-id", "msg_other"),
        ("webhook-timestamp", str(SENT_AT + 1)),
        ("webhook-signature", "v1," + base64.b64encode(b"\0" * 32).decode()),
        ("webhook-signature", "v1a,AAAA v2,BBBB"),
        ("webhook-signature", "v1,not base64!"),
    ],
)
def test_altered_headers_are_refused(header: str, value: str) -> None:
    headers = {**signed(OLD_SECRET), header: value}
    with pytest.raises(WebhookVerificationError, match="no webhook-signature matches"):
        verify(OLD_SECRET, headers, BODY, now=SENT_AT)


@pytest.mark.parametrize(
    ("now", "problem"),
    [
        (SENT_AT + 301, "old"),
        (SENT_AT + 86_400, "old"),
        (SENT_AT - 301, "in the future"),
    ],
)
def test_a_timestamp_beyond_the_tolerance_is_refused(now: int, problem: str) -> None:
    with pytest.raises(WebhookVerificationError, match=problem):
        verify(OLD_SECRET, signed(OLD_SECRET), BODY, now=now)


def test_the_tolerance_is_the_callers_to_choose() -> None:
    verify(OLD_SECRET, signed(OLD_SECRET), BODY, now=SENT_AT + 300)
    verify(OLD_SECRET, signed(OLD_SECRET), BODY, now=SENT_AT + 3000, tolerance_s=3600)
    with pytest.raises(WebhookVerificationError):
        verify(OLD_SECRET, signed(OLD_SECRET), BODY, now=SENT_AT + 61, tolerance_s=60)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_is_refused_by_name(missing: str) -> None:
    headers = {name: value for name, value in signed(OLD_SECRET).items() if name != missing}
    with pytest.raises(WebhookVerificationError, match=f"the {missing} header is missing"):
        verify(OLD_SECRET, headers, BODY, now=SENT_AT)


@pytest.mark.parametrize("timestamp", ["", "1767225600.5", "-1", "soon", "\uff11"])
def test_a_timestamp_that_is_not_unix_seconds_is_refused(timestamp: str) -> None:
    headers = {**signed(OLD_SECRET), "webhook-timestamp": timestamp}
    with pytest.raises(WebhookVerificationError):
        verify(OLD_SECRET, headers, BODY, now=SENT_AT)


@pytest.mark.parametrize("secret", ["", "whsec_", "whsec_not base64", "c2VjcmV0", "whsec_!!"])
def test_a_secret_that_is_not_whsec_base64_is_a_usage_error(secret: str) -> None:
    with pytest.raises(ValueError, match="webhook secret"):
        verify(secret, signed(OLD_SECRET), BODY, now=SENT_AT)


@pytest.mark.parametrize(
    ("keys", "message_id", "timestamp"),
    [
        ([], "msg_1", SENT_AT),
        ([b""], "msg_1", SENT_AT),
        ([b"k" * 32], "", SENT_AT),
        ([b"k" * 32], "msg.1", SENT_AT),  # `.` separates the signed fields
        ([b"k" * 32], "msg 1", SENT_AT),
        ([b"k" * 32], "msg_1", -1),
    ],
)
def test_sign_refuses_what_would_make_an_ambiguous_signature(
    keys: list[bytes], message_id: str, timestamp: int
) -> None:
    with pytest.raises(ValueError):
        sign(keys, message_id, timestamp, BODY)
