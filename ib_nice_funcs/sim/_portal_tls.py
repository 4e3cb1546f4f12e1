"""TLS material for the Client Portal simulator: a throwaway CA and a server certificate.

A small CA (``ca.pem``, what a client passes as ``verify=``) signs a server
certificate for ``127.0.0.1`` and ``localhost``. It is made with the
``cryptography`` package when it is importable, else with the ``openssl``
command line tool; without either, TLS is refused with a clear error.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import ssl
import subprocess
import tempfile
from dataclasses import dataclass

__all__ = ["TlsMaterial", "TlsUnavailableError", "make_tls_material", "server_context",
           "available_backends"]

log = logging.getLogger(__name__)

_DAYS = 7


class TlsUnavailableError(RuntimeError):
    """Neither the ``cryptography`` package nor the ``openssl`` tool is available."""


@dataclass
class TlsMaterial:
    """Paths of the generated PEM files (all inside ``directory``)."""

    directory: str
    ca_path: str
    cert_path: str
    key_path: str
    backend: str
    owned: bool = True

    def cleanup(self) -> None:
        """Delete the directory if this object created it."""
        if self.owned:
            shutil.rmtree(self.directory, ignore_errors=True)


def _have_cryptography() -> bool:
    try:
        import cryptography.x509  # noqa: F401
    except ImportError:
        return False
    return True


def available_backends() -> list[str]:
    """Backends usable here, in order of preference (``cryptography``, ``openssl``)."""
    out = []
    if _have_cryptography():
        out.append("cryptography")
    if shutil.which("openssl"):
        out.append("openssl")
    return out


def make_tls_material(directory: str | None = None, backend: str = "auto") -> TlsMaterial:
    """Generate a CA and a server certificate for 127.0.0.1/localhost.

    Args:
        directory: where to write the files (a new temporary directory if None).
        backend: ``auto``, ``cryptography`` or ``openssl``.

    Raises:
        TlsUnavailableError: when no backend is available (or the one asked for is not).
        RuntimeError: when ``openssl`` fails.
    """
    choices = available_backends()
    if backend == "auto":
        if not choices:
            raise TlsUnavailableError(
                "cannot make a TLS certificate: install the 'cryptography' package "
                "(pip install cryptography) or the openssl command line tool, or start the "
                "portal simulator with tls=False")
        backend = choices[0]
    elif backend not in choices:
        raise TlsUnavailableError(f"TLS backend {backend!r} is not available here "
                                  f"(available: {choices or 'none'})")
    owned = directory is None
    directory = directory or tempfile.mkdtemp(prefix="ib_portal_tls_")
    os.makedirs(directory, exist_ok=True)
    mat = TlsMaterial(directory, os.path.join(directory, "ca.pem"),
                      os.path.join(directory, "server.pem"),
                      os.path.join(directory, "server.key"), backend, owned)
    try:
        if backend == "cryptography":
            _with_cryptography(mat)
        else:
            _with_openssl(mat)
    except BaseException:
        mat.cleanup()
        raise
    log.debug("TLS material for the portal simulator made with %s in %s", backend, directory)
    return mat


def server_context(mat: TlsMaterial) -> ssl.SSLContext:
    """A server-side SSL context presenting the generated certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(mat.cert_path, mat.key_path)
    return ctx


# ------------------------------------------------------------------ cryptography
def _with_cryptography(mat: TlsMaterial) -> None:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    until = now + dt.timedelta(days=_DAYS)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ib_nice_funcs paper CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(until)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, key_cert_sign=True, crl_sign=True,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(ca_ski, critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                       x509.DNSName("localhost")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(ca_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(until)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=True, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(san, critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                ca_ski), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    with open(mat.ca_path, "wb") as fh:
        fh.write(ca.public_bytes(pem))
    with open(mat.cert_path, "wb") as fh:
        fh.write(cert.public_bytes(pem))
    fd = os.open(mat.key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))


# ----------------------------------------------------------------------- openssl
_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[ca_ext]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,digitalSignature,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[leaf_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyAgreement
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def _run(args: list[str], cwd: str, env: dict[str, str]) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=30, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed ({proc.returncode}): "
                           f"{proc.stderr.strip()[-500:]}")


def _with_openssl(mat: TlsMaterial) -> None:
    d = mat.directory
    cfg = os.path.join(d, "openssl.cnf")
    with open(cfg, "w", encoding="ascii") as fh:
        fh.write(_CONFIG)
    env = dict(os.environ, OPENSSL_CONF=cfg)
    ca_key = os.path.join(d, "ca.key")
    csr = os.path.join(d, "server.csr")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _run(["req", "-x509", *ec, "-keyout", ca_key, "-out", mat.ca_path, "-days", str(_DAYS),
          "-subj", "/CN=ib_nice_funcs paper CA", "-config", cfg, "-extensions", "ca_ext"],
         d, env)
    _run(["req", "-new", *ec, "-keyout", mat.key_path, "-out", csr, "-subj", "/CN=127.0.0.1",
          "-config", cfg], d, env)
    _run(["x509", "-req", "-in", csr, "-CA", mat.ca_path, "-CAkey", ca_key, "-out",
          mat.cert_path, "-days", str(_DAYS), "-set_serial",
          str(int.from_bytes(os.urandom(8), "big")), "-extfile", cfg, "-extensions",
          "leaf_ext"], d, env)
    for path in (ca_key, csr):
        os.unlink(path)
    os.chmod(mat.key_path, 0o600)
