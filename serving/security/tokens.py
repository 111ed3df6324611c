"""Bearer tokens, stored hashed: ``var/security/tokens.json`` (or ``auth.tokens_file``).

A token is ``tt_<id>_<secret>``: the id is public (``toitsu tokens list`` shows it, ``revoke``
takes it), the secret is 32 random bytes shown once, at creation. The store keeps, per token, the
subject, role, creation and expiry times, and ``scrypt(secret, salt)`` with a random salt; a
secret is checked with :func:`hmac.compare_digest` on the scrypt output. Rotation is creating a
new token with the same subject, role and rate limit and letting the old one expire after a grace
period (:meth:`TokenStore.rotate`; revoked and expired records stay listed, with the times).

Why a JSON file and not SQLite: a handful of records, read on every RPC and written only by an
admin, fits one file replaced atomically (``contracts.atomic``); readers never see half a write,
the server picks up a change at the next RPC (its stat changes), and writers serialize on a lock
file. The file exists once a token has been created; from then on the gateway requires tokens,
even after every token is revoked (it never falls back to open).

scrypt costs tens of milliseconds by design, so a token whose secret verified is remembered (by
the SHA-256 of the whole token) and later RPCs pay only a dictionary lookup; revocation and expiry
are still checked on every RPC against the current file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import math
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from contracts.atomic import write_json_atomic
from serving.errors import FailedPrecondition, InvalidInput, NotFound, Unauthenticated
from serving.security.roles import ROLES

SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
MAX_TOKEN_CHARS = 256  # longer bearer values are refused before any parsing
MAX_SUBJECT_CHARS = 200
_TOKEN = re.compile(r"^tt_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_CACHE_LIMIT = 4096


@dataclass(frozen=True)
class TokenRecord:
    id: str
    subject: str
    role: str
    created: float  # Unix seconds
    expires: float | None  # Unix seconds; None = never
    revoked: float | None
    salt: str  # hex
    hash: str  # hex scrypt(secret, salt)
    rate: float | None = None  # this token's rate limit (RPCs per second); None = auth.rate_per_second
    burst: float | None = None  # its token-bucket size; None = auth.burst
    rotated_to: str | None = None  # the id of the token that Rotate replaced it with

    def state(self, now: float) -> str:
        if self.revoked is not None:
            return "revoked"
        if self.expires is not None and now >= self.expires:
            return "expired"
        return "active"


@dataclass(frozen=True)
class Principal:
    """Who an authenticated RPC runs as."""

    token_id: str
    subject: str
    role: str
    rate: float | None = None  # the token's own rate limit, if it has one (serving.security.ratelimit)
    burst: float | None = None


class Pending:
    """A well-formed token of a known, active record whose secret still needs scrypt (slow)."""

    def __init__(self, store: TokenStore, token: str, record: TokenRecord) -> None:
        self._store, self._token, self._record = store, token, record

    def verify(self) -> Principal:
        return self._store._verify_secret(self._token, self._record)


def _principal(record: TokenRecord) -> Principal:
    return Principal(record.id, record.subject, record.role, record.rate, record.burst)


def _scrypt(secret: str, salt: bytes) -> bytes:
    return hashlib.scrypt(secret.encode("ascii"), salt=salt, **SCRYPT)


def token_id(token: str | None) -> str:
    """The public id of a well-formed token (``tt_<id>_<secret>``), else "" (for the audit trail)."""
    match = _TOKEN.match(token) if token and len(token) <= MAX_TOKEN_CHARS else None
    return match.group(1) if match else ""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


class TokenStore:
    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._records: dict[str, TokenRecord] = {}
        self._verified: dict[str, str] = {}  # sha256(token) → token id whose secret it matched
        self._rejected: set[str] = set()  # sha256(token) of secrets that did not match

    # -- reading ---------------------------------------------------------------------------
    def configured(self) -> bool:
        """True once a token store exists: the gateway then requires a token on every guarded RPC."""
        return self.path.exists()

    def records(self) -> dict[str, TokenRecord]:
        """The current records (re-read when the file changed since the last call)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return {}
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        with self._lock:
            if stamp != self._stamp:
                self._records = self._read()
                self._stamp = stamp
            return self._records

    def _read(self) -> dict[str, TokenRecord]:
        try:
            payload = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return {}
        return {r["id"]: TokenRecord(**r) for r in payload.get("tokens", [])}

    def now(self) -> float:
        """The store's clock (Unix seconds): what expiry is judged against."""
        return self._clock()

    def list(self) -> list[TokenRecord]:
        return sorted(self.records().values(), key=lambda r: r.created)

    # -- authenticating --------------------------------------------------------------------
    def check(self, token: str | None) -> Principal | Pending:
        """The cheap checks: a Principal (secret verified before), a Pending (scrypt still needed),
        or Unauthenticated (missing, malformed, unknown, revoked, expired or known-bad)."""
        if not token:
            raise Unauthenticated("this RPC needs a bearer token: metadata `authorization: Bearer <token>`")
        if len(token) > MAX_TOKEN_CHARS:
            raise Unauthenticated("the bearer token is not a valid token")
        match = _TOKEN.match(token)
        if match is None:
            raise Unauthenticated("the bearer token is not a valid token")
        record = self.records().get(match.group(1))
        if record is None:
            raise Unauthenticated("the bearer token is not a valid token")
        state = record.state(self._clock())
        if state != "active":
            raise Unauthenticated(f"the bearer token is {state}")
        digest = _digest(token)
        if self._verified.get(digest) == record.id:
            return _principal(record)
        if digest in self._rejected:
            raise Unauthenticated("the bearer token is not a valid token")
        return Pending(self, token, record)

    def authenticate(self, token: str | None) -> Principal:
        """:meth:`check`, then scrypt when it is needed."""
        result = self.check(token)
        return result.verify() if isinstance(result, Pending) else result

    def _verify_secret(self, token: str, record: TokenRecord) -> Principal:
        secret = token.split("_", 2)[2]
        digest = _digest(token)
        if not hmac.compare_digest(_scrypt(secret, bytes.fromhex(record.salt)), bytes.fromhex(record.hash)):
            with self._lock:
                if len(self._rejected) >= _CACHE_LIMIT:
                    self._rejected.clear()
                self._rejected.add(digest)
            raise Unauthenticated("the bearer token is not a valid token")
        with self._lock:
            if len(self._verified) >= _CACHE_LIMIT:
                self._verified.clear()
            self._verified[digest] = record.id
        return _principal(record)

    # -- writing (toitsu tokens) -----------------------------------------------------------
    @contextlib.contextmanager
    def _writing(self) -> Iterator[dict[str, TokenRecord]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            records = self._read()
            yield records
            payload: dict[str, Any] = {"version": 1, "tokens": [asdict(r) for r in records.values()]}
            write_json_atomic(self.path, payload)
            os.chmod(self.path, 0o600)

    def create(
        self,
        subject: str,
        role: str,
        expires_days: float | None = None,
        *,
        rate: float | None = None,
        burst: float | None = None,
    ) -> tuple[str, TokenRecord]:
        """A new token: (the token itself, shown only now; its stored record)."""
        token, record = self._new(subject, role, expires_days, rate, burst)
        with self._writing() as records:
            records[record.id] = record
        return token, record

    def _new(
        self, subject: str, role: str, expires_days: float | None, rate: float | None, burst: float | None
    ) -> tuple[str, TokenRecord]:
        if role not in ROLES:
            raise InvalidInput(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        if not subject.strip() or len(subject) > MAX_SUBJECT_CHARS or not subject.isprintable():
            raise InvalidInput(f"a token needs a subject (who it is for): printable, at most {MAX_SUBJECT_CHARS} chars")
        if expires_days is not None and not 0 < expires_days < 1e6:
            raise InvalidInput("expires_days must be > 0 (and under a million)")
        for name, value in (("rate", rate), ("burst", burst)):
            if value is not None and not 0 < value < 1e9:
                raise InvalidInput(f"{name} must be > 0")
        token_id, secret, salt = secrets.token_hex(8), secrets.token_urlsafe(32), secrets.token_bytes(16)
        now = self._clock()
        record = TokenRecord(
            id=token_id,
            subject=subject,
            role=role,
            created=now,
            expires=None if expires_days is None else now + expires_days * 86400.0,
            revoked=None,
            salt=salt.hex(),
            hash=_scrypt(secret, salt).hex(),
            rate=rate,
            burst=burst,
        )
        return f"tt_{token_id}_{secret}", record

    def rotate(
        self, token_id: str, grace_seconds: float = 0.0, expires_days: float | None = None
    ) -> tuple[str, TokenRecord, TokenRecord]:
        """A new token replacing ``token_id`` (same subject, role and rate limit), and the old one
        ending ``grace_seconds`` from now (revoked at once for 0); (new token, new record, old record).

        The new token's lifetime is ``expires_days``, else the old one's length (never, if none)."""
        if not 0 <= grace_seconds <= 30 * 86400:
            raise InvalidInput("grace_seconds must be between 0 and 30 days")
        now = self._clock()
        with self._writing() as records:
            old = records.get(token_id)
            if old is None:
                raise NotFound(f"no token {token_id!r}")
            if old.state(now) != "active":
                raise FailedPrecondition(f"token {token_id} is {old.state(now)}: create a new one instead")
            if expires_days is None and old.expires is not None:
                expires_days = (old.expires - old.created) / 86400.0
            token, new = self._new(old.subject, old.role, expires_days, old.rate, old.burst)
            ends = (
                {"revoked": now}
                if grace_seconds == 0
                else {"expires": min(old.expires or math.inf, now + grace_seconds)}
            )
            old = records[token_id] = TokenRecord(**{**asdict(old), **ends, "rotated_to": new.id})
            records[new.id] = new
        return token, new, old

    def revoke(self, token_id: str) -> TokenRecord:
        with self._writing() as records:
            record = records.get(token_id)
            if record is None:
                raise NotFound(f"no token {token_id!r}")
            if record.revoked is None:
                record = records[token_id] = TokenRecord(**{**asdict(record), "revoked": self._clock()})
        return record
