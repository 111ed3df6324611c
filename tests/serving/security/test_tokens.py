"""The token store: hashed with scrypt, expiry, revocation, rotation, reloading a changed file."""

from __future__ import annotations

import json

import pytest

from serving.errors import InvalidInput, NotFound, Unauthenticated
from serving.security.tokens import Pending, Principal, TokenStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_created_token_authenticates_and_only_its_hash_is_stored(tmp_path):
    store = TokenStore(tmp_path / "tokens.json")
    assert not store.configured()
    token, record = store.create("alice", "enroll")
    assert store.configured() and (tmp_path / "tokens.json").stat().st_mode & 0o777 == 0o600
    text = (tmp_path / "tokens.json").read_text()
    secret = token.split("_", 2)[2]
    assert secret not in text and record.hash in text and json.loads(text)["tokens"][0]["salt"] == record.salt
    assert isinstance(store.check(token), Pending)  # scrypt is still to do
    assert store.authenticate(token) == Principal(record.id, "alice", "enroll")
    assert isinstance(store.check(token), Principal)  # remembered: no second scrypt
    # Another store (the server) reading the same file accepts it too.
    assert TokenStore(tmp_path / "tokens.json").authenticate(token).subject == "alice"


@pytest.mark.parametrize(
    "bad",
    [
        None,
        "",
        "x",
        "tt_0123456789abcdef_" + "A" * 43,
        "tt_zz_yy",
        "tt_" + "a" * 300,
        "Bearer",
        "tt_\u00e9\u00e9_\u00e9",
    ],
)
def test_malformed_or_unknown_tokens_are_unauthenticated(tmp_path, bad):
    store = TokenStore(tmp_path / "tokens.json")
    store.create("alice", "admin")
    with pytest.raises(Unauthenticated):
        store.authenticate(bad)


def test_a_wrong_secret_for_a_known_id_is_unauthenticated(tmp_path):
    store = TokenStore(tmp_path / "tokens.json")
    token, _ = store.create("alice", "admin")
    forged = token[: -len("A")] + ("B" if token[-1] != "B" else "C")
    with pytest.raises(Unauthenticated):
        store.authenticate(forged)
    with pytest.raises(Unauthenticated):  # known bad: refused by the cheap check
        store.check(forged)
    assert store.authenticate(token).subject == "alice"


def test_expiry_and_revocation_and_rotation(tmp_path):
    clock = Clock()
    store = TokenStore(tmp_path / "tokens.json", clock=clock)
    old, old_record = store.create("ci", "verify", expires_days=1)
    assert store.authenticate(old).role == "verify"
    clock.now += 86400 + 1
    with pytest.raises(Unauthenticated, match="expired"):
        store.authenticate(old)
    clock.now -= 86400  # rotation: a new token, then the old one revoked
    new, _ = store.create("ci", "verify", expires_days=30)
    server = TokenStore(tmp_path / "tokens.json", clock=clock)  # the gateway's view of the same file
    assert server.authenticate(old).subject == "ci"
    assert store.revoke(old_record.id).revoked == clock.now
    with pytest.raises(Unauthenticated, match="revoked"):  # the change is seen at the next check, cache or not
        server.authenticate(old)
    assert server.authenticate(new).subject == "ci"
    assert [r.state(clock.now) for r in store.list()] == ["revoked", "active"]


def test_bad_arguments(tmp_path):
    store = TokenStore(tmp_path / "tokens.json")
    with pytest.raises(InvalidInput):
        store.create("alice", "root")
    with pytest.raises(InvalidInput):
        store.create(" ", "admin")
    with pytest.raises(NotFound):
        store.revoke("0123456789abcdef")
