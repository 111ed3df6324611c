"""The Triton client side of TLS (issue 16): TritonBackend reaches a Triton endpoint over TLS and
mutual TLS with the configured PEM files. The endpoint is a real gRPC server speaking Triton's
GRPCInferenceService (readiness and model config only), with certificates made here by openssl."""

from __future__ import annotations

from concurrent import futures

import grpc
import pytest
from google.protobuf import json_format
from tritonclient.grpc import service_pb2, service_pb2_grpc

from serving.config import ConfigError, load_config
from serving.errors import Unavailable
from serving.inference.triton_backend import TritonBackend
from serving.loader import make_backend
from tests.serving.inference.test_triton_backend import CONFIG, KEY, speaker_model  # noqa: F401
from tests.serving.security.test_tls import make_ca, make_leaf


class FakeTriton(service_pb2_grpc.GRPCInferenceServiceServicer):
    def ModelReady(self, request, context):
        return service_pb2.ModelReadyResponse(ready=True)

    def ModelConfig(self, request, context):
        return json_format.ParseDict({"config": {"name": request.name, **CONFIG}}, service_pb2.ModelConfigResponse())


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("triton-pki")
    ca = make_ca(folder, "ca")
    return {
        "ca": ca,
        "server": make_leaf(folder, "triton", ca, "serverAuth"),
        "client": make_leaf(folder, "gw", ca, "clientAuth"),
    }


def _serve(pki, mutual: bool) -> tuple[grpc.Server, str]:
    server = grpc.server(futures.ThreadPoolExecutor(2))
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(FakeTriton(), server)
    (cert, key), ca = pki["server"], pki["ca"][0]
    credentials = grpc.ssl_server_credentials(
        [(key.read_bytes(), cert.read_bytes())], root_certificates=ca.read_bytes(), require_client_auth=mutual
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    return server, f"127.0.0.1:{port}"


def _config(url: str, **triton: str):
    return load_config(
        overrides={
            "triton.url": url,
            "triton.probe_timeout_seconds": "3",
            **{f"triton.{k}": v for k, v in triton.items()},
        }
    )


@pytest.mark.parametrize("mutual", [False, True])
def test_the_backend_reaches_triton_over_tls_and_mutual_tls(pki, speaker_model, mutual):  # noqa: F811
    server, url = _serve(pki, mutual)
    try:
        files = {"root_certificates": str(pki["ca"][0])}  # a CA file alone implies triton.ssl
        if mutual:
            files |= {"certificate_chain": str(pki["client"][0]), "private_key": str(pki["client"][1])}
        backend = make_backend(_config(url, **files), "triton", 1)
        backend.load(KEY, speaker_model)
        assert backend.ready(KEY)
        backend.close()
        # A plaintext client, or (mutual TLS) one without its certificate, does not get through.
        refused = [TritonBackend(url, probe_timeout_s=3)]
        if mutual:
            refused.append(
                TritonBackend(url, probe_timeout_s=3, ssl=True, root_certificates=files["root_certificates"])
            )
        for client in refused:
            with pytest.raises(Unavailable):
                client.load(KEY, speaker_model)
            client.close()
    finally:
        server.stop(0)


def test_tls_files_are_checked(tmp_path, pki):
    with pytest.raises(ConfigError, match="go together"):
        _config("x:1", certificate_chain=str(pki["client"][0]))
    with pytest.raises(ConfigError, match="cannot read"):
        make_backend(_config("x:1", root_certificates=str(tmp_path / "missing.pem")), "triton", 1)
