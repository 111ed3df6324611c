"""TLS and mutual TLS on a real gateway, with certificates made here by openssl; reload without restart."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from serving.config import ConfigError, load_config
from serving.security.tokens import TokenStore
from serving.server import Gateway
from toitsu.cli import main

# openssl makes the certificates; scripts/debian-packages.sh installs it, so a missing one fails here.

_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    key, cert = folder / f"{name}.key", folder / f"{name}.pem"
    _openssl(
        "req", "-x509", *_EC, "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    return cert, key


def make_leaf(folder: Path, name: str, ca: tuple[Path, Path], usage: str) -> tuple[Path, Path]:
    key, csr, cert, ext = (folder / f"{name}.{s}" for s in ("key", "csr", "pem", "ext"))
    ext.write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
        f"extendedKeyUsage={usage}\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
    )
    _openssl("req", *_EC, "-keyout", key, "-out", csr, "-subj", f"/CN={name}")
    _openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial", "-out", cert,
             "-days", "2", "-extfile", ext)  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki")
    ca, other_ca = make_ca(folder, "ca"), make_ca(folder, "other-ca")
    return {
        "folder": folder,
        "ca": ca,
        "other_ca": other_ca,
        "server": make_leaf(folder, "server", ca, "serverAuth"),
        "other_server": make_leaf(folder, "other-server", other_ca, "serverAuth"),
        "client": make_leaf(folder, "client", ca, "clientAuth"),
        "stranger": make_leaf(folder, "stranger", other_ca, "clientAuth"),
    }


def _gateway(models_dir, tmp_path, server_files: tuple[Path, Path], client_ca: Path | None = None, **extra) -> Gateway:
    live = tmp_path / "tls"
    live.mkdir(exist_ok=True)
    shutil.copy(server_files[0], live / "server.pem")
    shutil.copy(server_files[1], live / "server.key")
    overrides = {
        "server.port": "0",
        "server.metrics_port": "0",
        "speaker.enabled": "false",
        "sound.enabled": "false",
        "face.enabled": "false",
        "paths.models": str(models_dir),
        "paths.var": str(tmp_path / "var"),
        "server.tls_cert": str(live / "server.pem"),
        "server.tls_key": str(live / "server.key"),
        **extra,
    }
    if client_ca is not None:
        overrides["server.tls_client_ca"] = str(client_ca)
    gw = Gateway(load_config(overrides=overrides))
    gw.start(background_load=False)
    return gw


def _check(channel: grpc.Channel) -> int:
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status


def _secure(gw: Gateway, ca: Path, client: tuple[Path, Path] | None = None) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=client[1].read_bytes() if client else None,
        certificate_chain=client[0].read_bytes() if client else None,
    )
    return grpc.secure_channel(f"127.0.0.1:{gw.port}", credentials)


def _unavailable(channel: grpc.Channel) -> None:
    with channel, pytest.raises(grpc.RpcError) as err:
        _check(channel)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_tls_serves_tls_and_refuses_plaintext(models_dir, tmp_path, pki):
    gw = _gateway(models_dir, tmp_path, pki["server"])
    try:
        with _secure(gw, pki["ca"][0]) as ch:
            assert _check(ch) in (health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING)
        _unavailable(grpc.insecure_channel(f"127.0.0.1:{gw.port}"))  # plaintext on the TLS port
        _unavailable(_secure(gw, pki["other_ca"][0]))  # a CA that did not sign the server
    finally:
        gw.stop(grace=0)


def test_mutual_tls_needs_a_client_certificate_from_the_client_ca(models_dir, tmp_path, pki):
    gw = _gateway(models_dir, tmp_path, pki["server"], client_ca=pki["ca"][0])
    try:
        with _secure(gw, pki["ca"][0], pki["client"]) as ch:
            _check(ch)
        _unavailable(_secure(gw, pki["ca"][0]))  # no client certificate
        _unavailable(_secure(gw, pki["ca"][0], pki["stranger"]))  # signed by another CA
        _unavailable(grpc.insecure_channel(f"127.0.0.1:{gw.port}"))
    finally:
        gw.stop(grace=0)


def test_a_renewed_certificate_is_served_without_a_restart(models_dir, tmp_path, pki):
    gw = _gateway(models_dir, tmp_path, pki["server"])
    try:
        with _secure(gw, pki["ca"][0]) as ch:
            _check(ch)
        live = tmp_path / "tls"
        for src, name in ((pki["other_server"][1], "server.key"), (pki["other_server"][0], "server.pem")):
            shutil.copy(src, live / f".{name}.tmp")
            os.replace(live / f".{name}.tmp", live / name)
        with _secure(gw, pki["other_ca"][0]) as ch:  # a new connection gets the new certificate
            _check(ch)
        _unavailable(_secure(gw, pki["ca"][0]))
        assert gw.tls is not None and gw.tls.reloads == 1
    finally:
        gw.stop(grace=0)


def test_the_cli_speaks_mutual_tls_with_a_token(models_dir, tmp_path, pki, capsys):
    token, _ = TokenStore(tmp_path / "var" / "security" / "tokens.json").create("ops", "admin")
    gw = _gateway(models_dir, tmp_path, pki["server"], client_ca=pki["ca"][0])
    try:
        target = ["--target", f"127.0.0.1:{gw.port}", "--json", "--ca", str(pki["ca"][0])]
        client = ["--cert", str(pki["client"][0]), "--key", str(pki["client"][1])]
        main(["health", *target, *client])  # NOT_SERVING with no modality enabled: exit 1, but it answered
        assert json.loads(capsys.readouterr().out)["status"] in ("SERVING", "NOT_SERVING")
        assert main(["models", "list", *target, *client, "--token", token]) == 0
        assert json.loads(capsys.readouterr().out)
        with pytest.raises(SystemExit):
            main(["models", "list", *target, *client])  # TLS alone is not a token
        assert json.loads(capsys.readouterr().out)["error"]["code"] == "UNAUTHENTICATED"
        with pytest.raises(SystemExit):
            main(["health", *target])  # no client certificate
        assert json.loads(capsys.readouterr().out)["error"]["code"] == "UNAVAILABLE"
    finally:
        gw.stop(grace=0)


def test_tls_configuration_errors(models_dir, tmp_path, pki):
    with pytest.raises(ConfigError, match="go together"):
        _gateway(models_dir, tmp_path, pki["server"], **{"server.tls_key": ""})
    with pytest.raises(ConfigError, match="cannot read TLS file"):
        _gateway(models_dir, tmp_path, pki["server"], **{"server.tls_client_ca": str(tmp_path / "missing.pem")})


def test_tls_without_tokens_may_listen_beyond_loopback(models_dir, tmp_path, pki):
    gw = _gateway(models_dir, tmp_path, pki["server"], **{"server.host": "0.0.0.0"})
    gw.stop(grace=0)
