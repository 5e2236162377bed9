"""The tokens file: its format, constant-time checks, reloading, and client identities."""

from __future__ import annotations

import contextlib
import hmac
import logging
import os

import pytest

from sensorium import auth
from sensorium.auth import TokenFile, TokenFileError, client_identity, parse_tokens
from sensorium.errors import Reason, SensoriumError

SERVICES = {"pdf", "transcription", "embedding"}
A, B, C = "a" * 32, "b" * 32, "c" * 32


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_format_comments_blank_lines_and_service_lists():
    entries = parse_tokens(f"# the indexer\n\n{A}\n  {B} pdf,embedding  \n{C}\tTRANSCRIPTION\n", SERVICES)
    principals = sorted(entries.values(), key=lambda p: p.label)
    by_label = {p.label: p for p in principals}
    assert by_label[auth.label_of(A)].services is None  # a token alone may call every service
    assert by_label[auth.label_of(B)].services == {"pdf", "embedding"}
    assert by_label[auth.label_of(C)].services == {"transcription"}
    assert not by_label[auth.label_of(B)].may_call("transcription")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"{A} pdf,video", "line 1: after the token comes a comma-separated list"),
        (f"{A} pdf embedding", "found 'pdf embedding'"),
        (f"{A} pdf,", "comma-separated list"),
        (f"{A}\n# again\n{A} pdf", "line 3 repeats the token of line 1"),
    ],
)
def test_mistakes_name_the_line(text, message):
    with pytest.raises(TokenFileError) as error:
        parse_tokens(text, SERVICES)
    assert message in str(error.value)
    assert A not in str(error.value), "a token never appears in a message"


def test_short_tokens_are_accepted_with_a_warning(caplog):
    caplog.set_level(logging.WARNING)
    parse_tokens("short\n", SERVICES)
    assert any("short token" in r.getMessage() for r in caplog.records)
    assert all("short\n" not in r.getMessage() for r in caplog.records)


def test_authenticate_answers_missing_malformed_and_unknown_tokens(tmp_path):
    path = tmp_path / "tokens"
    _write(path, f"{A}\n{B} pdf\n")
    tokens = TokenFile(path, SERVICES)
    assert tokens.authenticate(_bearer(A)).services is None
    assert tokens.authenticate({"authorization": f"bearer  {B} "}).services == {"pdf"}
    for metadata, says in [({}, "needs a bearer token"), ({"authorization": A}, "must read `Bearer"),
                           ({"authorization": "Basic eDp5"}, "must read `Bearer"),
                           (_bearer(C), "not accepted")]:
        with pytest.raises(SensoriumError) as error:
            tokens.authenticate(metadata)
        assert error.value.reason == Reason.UNAUTHENTICATED
        assert says in error.value.message


def test_every_token_is_compared_whichever_matches(tmp_path, monkeypatch):
    """No early exit: the time a check takes does not depend on which token matched."""
    path = tmp_path / "tokens"
    _write(path, f"{A}\n{B}\n{C}\n")
    tokens = TokenFile(path, SERVICES)
    compared: list[int] = []
    real = hmac.compare_digest

    def counting(x, y):
        compared.append(len(x))
        return real(x, y)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    for token in (A, C, "x" * 5):
        compared.clear()
        with pytest.raises(SensoriumError) if token.startswith("x") else contextlib.nullcontext():
            tokens.authenticate(_bearer(token))
        # Digests of equal length whatever the token's length: its length does not show either.
        assert compared == [32, 32, 32]


def _gauge(name: str) -> float:
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value(name)
    assert value is not None
    return value


def test_the_file_is_reloaded_when_it_changes_and_revocation_fails_closed(tmp_path, caplog):
    path = tmp_path / "tokens"
    _write(path, f"{A}\n")
    tokens = TokenFile(path, SERVICES)
    _replace(path, f"{B} embedding\n")
    assert tokens.authenticate(_bearer(B)).services == {"embedding"}
    with pytest.raises(SensoriumError):
        tokens.authenticate(_bearer(A))  # revoked
    assert _gauge("sensorium_auth_tokens_file_usable") == 1 and _gauge("sensorium_auth_tokens") == 1

    caplog.set_level(logging.ERROR)
    _replace(path, f"{C} pdf,nope\n")  # broken: nobody gets in, not even the last good token
    for _ in range(3):
        with pytest.raises(SensoriumError) as refused:
            tokens.authenticate(_bearer(B))
        assert refused.value.reason == Reason.UNAUTHENTICATED
    errors = [r for r in caplog.records if "cannot be used" in r.getMessage()]
    assert len(errors) == 1, "logged once per state of the file, not once per call"
    assert _gauge("sensorium_auth_tokens_file_usable") == 0 and _gauge("sensorium_auth_tokens") == 0
    _replace(path, f"{C}\n")
    assert tokens.authenticate(_bearer(C))
    assert _gauge("sensorium_auth_tokens_file_usable") == 1
    path.unlink()  # deleted: revoked, every token
    with pytest.raises(SensoriumError):
        tokens.authenticate(_bearer(C))
    assert _gauge("sensorium_auth_tokens_file_usable") == 0
    _write(path, f"{C}\n")
    path.chmod(0o644)  # back, but readable by everyone: still refused
    with pytest.raises(SensoriumError):
        tokens.authenticate(_bearer(C))
    path.chmod(0o600)
    assert tokens.authenticate(_bearer(C))


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o660])
def test_a_tokens_file_others_may_read_is_refused_at_start(tmp_path, mode):
    path = tmp_path / "tokens"
    _write(path, f"{A}\n")
    path.chmod(mode)
    if mode & 0o070:
        os.chown(path, -1, os.getegid() + 1)  # a group that is not the server's
    with pytest.raises(TokenFileError) as error:
        TokenFile(path, SERVICES)
    assert f"chmod 600 {path}" in str(error.value)


def test_a_tokens_file_readable_by_the_servers_own_group_is_accepted(tmp_path):
    """The Kubernetes layout: a Secret volume file, mode 0440, group = the pod's fsGroup."""
    path = tmp_path / "tokens"
    _write(path, f"{A}\n")
    path.chmod(0o440)
    os.chown(path, -1, os.getegid())
    assert TokenFile(path, SERVICES).authenticate(_bearer(A)).services is None


def test_start_up_refuses_an_unreadable_file(tmp_path):
    with pytest.raises(TokenFileError) as error:
        TokenFile(tmp_path / "missing", SERVICES)
    assert "SENSORIUM_AUTH__TOKENS_FILE" in str(error.value)


def test_client_identity_prefers_token_then_certificate_then_address():
    principal = auth.Principal(auth.label_of(A), None)
    assert client_identity(principal, "CN=x", "ipv4:10.1.2.3:5000") == auth.label_of(A)
    assert A not in auth.label_of(A)
    assert client_identity(None, "CN=indexer", "ipv4:10.1.2.3:5000") == "cert:CN=indexer"
    assert client_identity(None, "", "ipv4:10.1.2.3:5000") == "ip:10.1.2.3"
    assert client_identity(None, "", "ipv6:[::1]:5000") == "ip:::1"


def _replace(path, text: str) -> None:
    """Replace the file as deploy tools do: write aside, rename over it."""
    aside = path.with_suffix(".new")
    _write(aside, text)
    os.replace(aside, path)


def _write(path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o600)
