"""The tokens file (parsing, reload, refusals that never echo a token), the TLS settings'
cross-checks, and the identity rules callers live by — without a server."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from clipmesh.index.config import IndexConfig
from clipmesh.runtime.auth import TokenFile, parse_tokens, token_digest
from clipmesh.runtime.config import ConfigError
from clipmesh.runtime.identity import acting_for, caller_of, current_caller
from clipmesh.runtime.security import check_tls_settings
from clipmesh_client.wire import CALLER_HEADER, bearer_metadata


def test_hashed_and_plain_lines_name_their_callers() -> None:
    entries = parse_tokens(
        f"# comment\n\nsearch-ui:{token_digest('s3cret')}\nalice:plain-token\n", "tokens"
    )
    assert [e.caller for e in entries] == ["search-ui", "alice"]
    assert entries[0].digest.hex() == token_digest("s3cret").removeprefix("sha256:")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("alice\n", "tokens:1: expected `caller:sha256:<hex>`"),
        ("# only\nal ice:leaked-secret\n", "tokens:2: expected"),
        ("alice:sha256:abc\n", "tokens:1: a sha256 digest is 64 hexadecimal"),
        ("alice:leaked-secret\nbob:leaked-secret\n", "tokens:2: the same token is listed twice"),
        ("# nobody\n", "no tokens"),
    ],
)
def test_a_bad_tokens_file_is_refused_naming_the_line_never_the_token(text, problem) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_tokens(text, "tokens")
    assert problem in str(refused.value)
    assert "leaked-secret" not in str(refused.value)


def test_tokens_are_reloaded_when_the_file_changes_and_a_broken_file_keeps_the_old(
    tmp_path,
) -> None:
    path = tmp_path / "tokens.txt"
    path.write_text("alice:first\n")
    tokens = TokenFile(path, "CLIPMESH_ORCHESTRATOR_AUTH_TOKENS_FILE", check_interval_s=0)
    assert tokens.identify("first") == "alice"
    assert tokens.identify("second") is None
    path.write_text("bob:second\n")
    os.utime(path, ns=(0, 1))  # a different mtime even on coarse-clock filesystems
    assert tokens.identify("second") == "bob"
    assert tokens.identify("first") is None  # revoked
    path.write_text("not a tokens line\n")
    assert tokens.identify("second") == "bob"


def test_the_tls_files_must_come_in_workable_combinations() -> None:
    config = IndexConfig()
    check_tls_settings(config)  # plaintext is fine
    with pytest.raises(ConfigError, match=r"CLIPMESH_INDEX_TLS_CERT_FILE and .* set together"):
        check_tls_settings(replace(config, tls_cert_file="index.crt"))
    with pytest.raises(ConfigError, match="TLS_CLIENT_AUTH needs"):
        check_tls_settings(
            replace(config, tls_cert_file="a", tls_key_file="b", tls_client_auth=True)
        )


class _Context:
    def __init__(self, *metadata: tuple[str, str]) -> None:
        self._metadata = metadata

    def invocation_metadata(self):
        return self._metadata


def test_an_authenticated_caller_cannot_claim_another_identity_by_header() -> None:
    claims_bob = _Context((CALLER_HEADER, "bob"))
    assert caller_of(claims_bob) == "bob"  # no auth: the header is trusted
    with acting_for("alice"):
        assert caller_of(claims_bob) == "alice"
    assert current_caller() is None


def test_the_sdk_sends_a_token_as_a_bearer_authorization_header() -> None:
    assert bearer_metadata("abc") == (("authorization", "Bearer abc"),)
    assert bearer_metadata(None) == ()
