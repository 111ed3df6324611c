"""``toitsu tokens``: ``--local`` on the var/ store (the bootstrap), else over TokenService with an
admin token; and client commands sending ``--token`` / ``$TOITSU_TOKEN``."""

from __future__ import annotations

import json

import pytest

from serving.server import Gateway
from tests.conftest import SPEAKER_DIM
from tests.serving.security.conftest import _config
from toitsu.cli import main


def _json(capsys, argv: list[str]) -> tuple[int, dict]:
    code = main(argv)
    return code, json.loads(capsys.readouterr().out)


def test_tokens_create_list_revoke_and_the_cli_sends_the_token(models_dir, voices, tmp_path, capsys, monkeypatch):
    var = tmp_path / "var"
    local = ["--local", "--var", str(var), "--json"]
    _, created = _json(capsys, ["tokens", "create", *local, "--subject", "ops", "--role", "verify"])
    assert created["token"].startswith("tt_") and created["state"] == "active" and created["expires"] == "never"
    _, listed = _json(capsys, ["tokens", "list", *local])
    assert [t["id"] for t in listed["tokens"]] == [created["id"]] and "token" not in listed["tokens"][0]
    assert created["token"] not in (var / "security" / "tokens.json").read_text()
    _, root = _json(capsys, ["tokens", "create", *local, "--subject", "root", "--role", "admin"])

    clip = tmp_path / "clip.wav"
    clip.write_bytes(voices.clip(0, 0))
    gw = Gateway(_config(models_dir, var))
    gw.start(background_load=False)
    try:
        assert gw.wait_loaded(60)
        target = ["--target", f"127.0.0.1:{gw.port}", "--json"]
        embed = ["speaker", "embed", str(clip), *target]
        with pytest.raises(SystemExit):
            main(embed)
        assert json.loads(capsys.readouterr().out)["error"]["code"] == "UNAUTHENTICATED"
        code, reply = _json(capsys, [*embed, "--token", created["token"]])
        assert code == 0 and len(reply["embedding"]["values"]) == SPEAKER_DIM
        monkeypatch.setenv("TOITSU_TOKEN", created["token"])
        code, reply = _json(capsys, embed)
        assert code == 0 and reply["embedding"]["values"]

        # Over the gateway, the token commands need admin: the verify token in $TOITSU_TOKEN is refused.
        with pytest.raises(SystemExit):
            main(["tokens", "list", *target])
        assert json.loads(capsys.readouterr().out)["error"]["code"] == "PERMISSION_DENIED"
        as_root = [*target, "--token", root["token"]]
        _, listed = _json(capsys, ["tokens", "list", *as_root])
        assert [t["subject"] for t in listed["tokens"]] == ["ops", "root"]
        _, made = _json(capsys, ["tokens", "create", *as_root, "--subject", "bot", "--role", "enroll", "--rate", "5"])
        assert made["role"] == "enroll" and made["rate_per_second"] == 5 and made["token"].startswith("tt_")
        _, revoked = _json(capsys, ["tokens", "revoke", *as_root, created["id"]])
        assert revoked["state"] == "revoked"
        with pytest.raises(SystemExit):
            main(embed)
        assert json.loads(capsys.readouterr().out)["error"]["code"] == "UNAUTHENTICATED"
        _, rotated = _json(capsys, ["tokens", "rotate", *as_root, made["id"]])
        assert rotated["replaces"] == made["id"] and rotated["subject"] == "bot"
    finally:
        gw.stop(grace=1)
    with pytest.raises(SystemExit, match="no token"):
        main(["tokens", "revoke", "--local", "--var", str(var), "0123456789abcdef"])
    with pytest.raises(SystemExit, match="add --local"):
        main(["tokens", "list", "--var", str(var)])
