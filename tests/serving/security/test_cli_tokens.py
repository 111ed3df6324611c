"""``toitsu tokens`` on the var/ store, and client commands sending ``--token`` / ``$TOITSU_TOKEN``."""

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
    _, created = _json(
        capsys, ["tokens", "--var", str(var), "--json", "create", "--subject", "ops", "--role", "verify"]
    )
    assert created["token"].startswith("tt_") and created["state"] == "active" and created["expires"] == "never"
    _, listed = _json(capsys, ["tokens", "--var", str(var), "--json", "list"])
    assert [t["id"] for t in listed["tokens"]] == [created["id"]] and "token" not in listed["tokens"][0]
    assert created["token"] not in (var / "security" / "tokens.json").read_text()

    clip = tmp_path / "clip.wav"
    clip.write_bytes(voices.clip(0, 0))
    gw = Gateway(_config(models_dir, var))
    gw.start(background_load=False)
    try:
        assert gw.wait_loaded(60)
        embed = ["speaker", "embed", str(clip), "--target", f"127.0.0.1:{gw.port}", "--json"]
        with pytest.raises(SystemExit):
            main(embed)
        assert json.loads(capsys.readouterr().out)["error"]["code"] == "UNAUTHENTICATED"
        code, reply = _json(capsys, [*embed, "--token", created["token"]])
        assert code == 0 and len(reply["embedding"]["values"]) == SPEAKER_DIM
        monkeypatch.setenv("TOITSU_TOKEN", created["token"])
        code, reply = _json(capsys, embed)
        assert code == 0 and reply["embedding"]["values"]

        _, revoked = _json(capsys, ["tokens", "--var", str(var), "--json", "revoke", created["id"]])
        assert revoked["state"] == "revoked"
        with pytest.raises(SystemExit):
            main(embed)
        assert json.loads(capsys.readouterr().out)["error"]["code"] == "UNAUTHENTICATED"
    finally:
        gw.stop(grace=1)
    with pytest.raises(SystemExit, match="no token"):
        main(["tokens", "--var", str(var), "revoke", "0123456789abcdef"])
