"""A speaker gateway on port 0 with a token store holding one token per role."""

from __future__ import annotations

import grpc
import pytest

from serving.config import load_config
from serving.security.tokens import TokenStore
from serving.server import Gateway

MAX_MESSAGE_MB = 17


def _config(models_dir, var, **extra):
    return load_config(
        overrides={
            "server.port": "0",
            "server.metrics_port": "0",
            "sound.enabled": "false",
            "face.enabled": "false",
            "paths.models": str(models_dir),
            "paths.var": str(var),
            "server.max_message_mb": str(MAX_MESSAGE_MB),
            **extra,
        }
    )


@pytest.fixture
def tokens(tmp_path):
    store = TokenStore(tmp_path / "var" / "security" / "tokens.json")
    return {role: store.create(f"{role}-user", role)[0] for role in ("verify", "enroll", "admin")} | {"store": store}


@pytest.fixture
def secured(models_dir, tmp_path, tokens):
    gw = Gateway(_config(models_dir, tmp_path / "var"))
    gw.start(background_load=False)
    assert gw.wait_loaded(60)
    yield gw
    gw.stop(grace=1)


@pytest.fixture
def channel(secured):
    opts = [("grpc.max_send_message_length", 64 << 20)]
    with grpc.insecure_channel(f"127.0.0.1:{secured.port}", options=opts) as ch:
        yield ch


def auth(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]
