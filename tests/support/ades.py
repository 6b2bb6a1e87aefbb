"""The ADES path in tests: EOEPCA's wrapper, a platform's stage tools, and the services they reach.

An ADES does not run an application package as written: `transpiler-mate cwlwrap` wraps its
workflow between the platform's stage-in (a STAC URL -> a staged folder) and stage-out (the
output folder -> a catalog in an object store). Here the stage tools are ours (ades/stage-*.cwl,
written as the eoap patterns write them), the object store is moto's S3 server on loopback, and
the STAC items are served over loopback HTTP.

The stage tools and the wrapper name their input and output type by its canonical URL in the
eoap/schemas repository (string_format.yaml#URI), and the CWL loaders fetch that URL and check it
exists. Offline, `eoap_schemas_mirror` answers for raw.githubusercontent.com: an HTTPS proxy on
loopback that serves the local copies in ades/schemas/ with a certificate from a throw-away CA,
named to the tools by the standard variables (https_proxy, REQUESTS_CA_BUNDLE).
"""

from __future__ import annotations

import datetime
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.cwl import BIN, runner_env

HERE = Path(__file__).resolve().parent / "ades"
STAGE_IN = HERE / "stage-in.cwl"
STAGE_OUT = HERE / "stage-out.cwl"
SCHEMA_HOST = "raw.githubusercontent.com"
SCHEMA_PREFIX = "/eoap/schemas/main/"  # the URL the stage tools and cwlwrap name the types by
SCHEMA_COPIES = HERE / "schemas"
BUCKET = "results"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
REGION = "us-east-1"


# ---------------------------------------------------------------- eoap/schemas, offline
def _tls_files(folder: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a certificate for SCHEMA_HOST signed by it: (ca, cert, key) PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "app-package test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SCHEMA_HOST)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(SCHEMA_HOST)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    files = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    files[0].write_bytes(ca.public_bytes(pem))
    files[1].write_bytes(cert.public_bytes(pem))
    files[2].write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return files


class _SchemaFiles(BaseHTTPRequestHandler):
    """GET/HEAD of SCHEMA_PREFIX<name> answered from SCHEMA_COPIES; anything else is a 404."""

    protocol_version = "HTTP/1.1"

    def _body(self) -> bytes | None:
        path = self.path.split("?")[0]
        if not path.startswith(SCHEMA_PREFIX):
            return None
        copy = SCHEMA_COPIES / path.removeprefix(SCHEMA_PREFIX)
        return copy.read_bytes() if copy.parent == SCHEMA_COPIES and copy.is_file() else None

    def _head(self, body: bytes | None) -> None:
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()

    def do_HEAD(self) -> None:
        self._head(self._body())

    def do_GET(self) -> None:
        body = self._body()
        self._head(body)
        self.wfile.write(body or b"")

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Proxy(BaseHTTPRequestHandler):
    """`CONNECT raw.githubusercontent.com:443`, then TLS with the test certificate; nothing else."""

    tls: ssl.SSLContext

    def do_CONNECT(self) -> None:
        if self.path != f"{SCHEMA_HOST}:443":
            self.send_error(403, f"this proxy serves only {SCHEMA_HOST}")
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        self.close_connection = True
        try:
            tunnel = self.tls.wrap_socket(self.connection, server_side=True)
        except (ssl.SSLError, OSError):
            return  # a client that did not trust the certificate: it reports the error itself
        with tunnel:
            _SchemaFiles(tunnel, self.client_address, self.server)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def eoap_schemas_mirror(folder: Path) -> Iterator[dict[str, str]]:
    """Serve the local eoap/schemas copies as https://raw.githubusercontent.com/eoap/schemas/main/*.

    Yields the environment variables that route requests' HTTPS through the loopback proxy and
    trust its certificate; loopback traffic (STAC items, S3) bypasses the proxy.
    """
    folder.mkdir(parents=True, exist_ok=True)
    ca, cert, key = _tls_files(folder)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    handler = type("Proxy", (_Proxy,), {"tls": tls})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    proxy = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield {
            "https_proxy": proxy, "HTTPS_PROXY": proxy,
            "no_proxy": "127.0.0.1,localhost", "NO_PROXY": "127.0.0.1,localhost",
            "REQUESTS_CA_BUNDLE": str(ca),
        }  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# ---------------------------------------------------------------- the object store
@dataclass(frozen=True)
class S3:
    """moto's S3 server on loopback, with one bucket."""

    endpoint_url: str
    bucket: str

    def client(self) -> Any:  # a boto3 S3 client
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=REGION, **CREDENTIALS)

    def stage_out_inputs(self, sub_path: str) -> dict[str, str]:
        """The stage-out inputs of the wrapped workflow for this store."""
        return {
            "s3_bucket": self.bucket, "sub_path": sub_path, "region_name": REGION,
            "endpoint_url": self.endpoint_url, **CREDENTIALS,
        }  # fmt: skip

    def download(self, prefix: str, dest: Path) -> list[str]:
        """Every object under `prefix` into `dest` (same layout); the keys, sorted."""
        client = self.client()
        keys = [
            obj["Key"]
            for page in client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=f"{prefix}/"
            )
            for obj in page.get("Contents", [])
        ]
        for key in keys:
            target = dest / key.removeprefix(f"{prefix}/")
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(self.bucket, key, str(target))
        return sorted(keys)


@contextmanager
def moto_s3() -> Iterator[S3]:
    """moto in server mode on a free loopback port, with the results bucket created."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        store = S3(f"http://{host}:{port}", BUCKET)
        store.client().create_bucket(Bucket=BUCKET)
        yield store
    finally:
        server.stop()


# ---------------------------------------------------------------- wrapping
def cwlwrap(package: Path, entry: str, output: Path, env: dict[str, str]) -> Path:
    """`transpiler-mate cwlwrap` of `package#entry` with the test stage tools, as a user runs it."""
    output.parent.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        [
            str(BIN / "transpiler-mate"), "cwlwrap",
            "--directory-stage-in", str(STAGE_IN), "--directory-stage-out", str(STAGE_OUT),
            "--output", str(output), f"{package}#{entry}",
        ],
        capture_output=True, text=True, env={**runner_env(output.parent), **env}, check=False,
        timeout=300,
    )  # fmt: skip
    errors = [line for line in (r.stdout + r.stderr).splitlines() if "Error" in line]
    assert r.returncode == 0, "\n".join(errors[-20:])
    return output


def uri(value: str) -> dict[str, str]:
    """A job value of the eoap string_format.yaml#URI type."""
    return {"value": value}
