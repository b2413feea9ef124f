"""Azurite behind HTTPS with OAuth (`--oauth basic`), and a loopback managed-identity endpoint,
for identity-based storage tests. Nothing here reaches a real identity endpoint.

Azurite's basic OAuth checks a bearer token's issuer, audience and lifetime (not its signature),
as storage would check a managed identity's token. The certificate is self-signed, made here.

Fixtures (import them into a test module to use them):
    azurite_oauth     the running emulator: `.queue_uri`, `.table_uri`, `.ca_file`
    identity_endpoint an App Service managed-identity endpoint on loopback; its `.requests`
                      records what azure-identity asked for
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jwt
import pytest
from azurite_server import ACCOUNT, AZURITE, run_azurite
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from required import skip_or_fail

__all__ = [
    "AzuriteOAuth",
    "IdentityEndpoint",
    "azurite_oauth_fixture",
    "identity_endpoint_fixture",
    "storage_token",
]

IDENTITY_HEADER = "loopback-identity-header"  # what App Service puts in IDENTITY_HEADER


def storage_token(lifetime: int = 3600) -> str:
    """A bearer token as Entra ID issues one for Azure Storage (unsigned use only: Azurite's
    basic OAuth checks issuer, audience and lifetime)."""
    now = int(time.time())
    claims = {
        "aud": "https://storage.azure.com",
        "iss": f"https://sts.windows.net/{uuid.uuid4()}/",
        "iat": now - 60,
        "nbf": now - 60,
        "exp": now + lifetime,
        "oid": str(uuid.uuid4()),
    }
    return jwt.encode(claims, "not-a-real-signing-key-only-for-tests", algorithm="HS256")


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "azurite.pem", directory / "azurite-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@dataclass(frozen=True)
class AzuriteOAuth:
    """A running Azurite that takes bearer tokens over HTTPS."""

    pid: int
    queue_port: int
    table_port: int
    ca_file: Path  # the self-signed certificate: trust it with connection_verify or REQUESTS_CA_BUNDLE

    @property
    def queue_uri(self) -> str:
        return f"https://127.0.0.1:{self.queue_port}/{ACCOUNT}"

    @property
    def table_uri(self) -> str:
        return f"https://127.0.0.1:{self.table_port}/{ACCOUNT}"


@pytest.fixture(scope="session", name="azurite_oauth")
def azurite_oauth_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteOAuth]:
    """Start Azurite with --oauth basic on HTTPS for the session; stop it by PID at the end."""
    if not AZURITE.exists():
        skip_or_fail("Azurite is not installed: run `npm install` in the repository")
    data = tmp_path_factory.mktemp("azurite-oauth-data")
    cert, key = _self_signed(tmp_path_factory.mktemp("azurite-oauth-cert"))
    options = ("--oauth", "basic", "--cert", str(cert), "--key", str(key))
    with run_azurite(data / "db", data / "azurite.log", *options) as (pid, _, queue, table):
        yield AzuriteOAuth(pid, queue, table, cert)


@dataclass
class IdentityEndpoint:
    """An App Service managed-identity endpoint (IDENTITY_ENDPOINT + IDENTITY_HEADER) on loopback."""

    url: str
    requests: list[dict[str, str]] = field(default_factory=list)
    refuse: bool = False  # answer 400 as when the app has no such identity

    @property
    def env(self) -> dict[str, str]:
        """What App Service sets for ManagedIdentityCredential to find the endpoint."""
        return {"IDENTITY_ENDPOINT": self.url, "IDENTITY_HEADER": IDENTITY_HEADER}


@pytest.fixture(name="identity_endpoint")
def identity_endpoint_fixture(monkeypatch: pytest.MonkeyPatch) -> Iterator[IdentityEndpoint]:
    """A loopback managed-identity endpoint, set in the environment for azure-identity; the
    Azure CLI and other developer credentials are kept out of DefaultAzureCredential's way."""
    endpoint = IdentityEndpoint(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = dict(parse_qsl(urlsplit(self.path).query))
            endpoint.requests.append({**query, "header": self.headers.get("X-IDENTITY-HEADER", "")})
            if endpoint.refuse or self.headers.get("X-IDENTITY-HEADER") != IDENTITY_HEADER:
                body: dict[str, Any] = {"error": "invalid_request", "error_description": "no such identity"}
                status = 400
            else:
                body = {
                    "access_token": storage_token(),
                    "expires_on": str(int(time.time()) + 3600),
                    "resource": query.get("resource", ""),
                    "token_type": "Bearer",
                    "client_id": query.get("client_id", str(uuid.UUID(int=1))),
                }
                status = 200
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    endpoint.url = f"http://127.0.0.1:{server.server_address[1]}/msi/token"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    for key, value in endpoint.env.items():
        monkeypatch.setenv(key, value)
    for key in ("MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT", "IDENTITY_SERVER_THUMBPRINT"):
        monkeypatch.delenv(key, raising=False)
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()
