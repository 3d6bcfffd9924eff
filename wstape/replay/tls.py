"""TLS for ``wstape replay --tls``: a certificate minted from the mitmproxy CA, or your own.

A device or browser set up to trust mitmproxy's CA for recording (``CONFDIR/
mitmproxy-ca-cert.pem``) then trusts the replay server too, for every ``--hostname``.
The CA is created in ``confdir`` if it is not there yet, exactly as mitmproxy would.
TLS 1.2 is the minimum (the WeChat network guide requires it; WX-TLS-VERSION).
"""

from __future__ import annotations

import ipaddress
import os
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path

DEFAULT_CONFDIR = Path("~/.mitmproxy")


class TlsSetupError(Exception):
    """The certificate or key could not be made or loaded (a usage problem, exit 2)."""


def _context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def context_from_files(cert: Path, key: Path | None = None) -> ssl.SSLContext:
    """A server context from a PEM certificate (chain) and key."""
    ctx = _context()
    try:
        ctx.load_cert_chain(str(cert), str(key) if key is not None else None)
    except (OSError, ssl.SSLError) as e:
        raise TlsSetupError(f"cannot load certificate {cert} / key {key}: {e}") from e
    return ctx


def mint(hostnames: Sequence[str], confdir: Path | None = None) -> tuple[bytes, bytes, Path]:
    """A PEM certificate chain and PEM key for ``hostnames``, signed by the mitmproxy CA.

    Returns ``(chain_pem, key_pem, ca_cert_path)``; the CA (created if missing) lives in
    ``confdir`` (default ``~/.mitmproxy``).
    """
    if not hostnames:
        raise TlsSetupError("--tls needs at least one --hostname (or --cert/--key)")
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from mitmproxy.certs import CertStore

    directory = (confdir or DEFAULT_CONFDIR).expanduser()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        store = CertStore.from_store(directory, "mitmproxy", 2048)
    except (OSError, ValueError) as e:
        raise TlsSetupError(f"cannot create or load the mitmproxy CA in {directory}: {e}") from e
    sans: list[x509.GeneralName] = []
    for name in hostnames:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    entry = store.get_cert(hostnames[0], sans)
    chain = entry.cert.to_pem() + b"".join(c.to_pem() for c in entry.chain_certs)
    if not entry.chain_certs:
        chain += store.default_ca.to_pem()
    key = entry.privatekey.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return chain, key, directory / "mitmproxy-ca-cert.pem"


def minted_context(hostnames: Sequence[str], confdir: Path | None = None) -> ssl.SSLContext:
    """A server context with a certificate for ``hostnames`` from the mitmproxy CA."""
    chain, key, _ = mint(hostnames, confdir)
    # ssl only loads from files: write them privately and delete them at once.
    with tempfile.TemporaryDirectory(prefix="wstape-tls-") as tmp:
        cert_path = Path(tmp) / "cert.pem"
        key_path = Path(tmp) / "key.pem"
        for path, data in ((cert_path, chain), (key_path, key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        return context_from_files(cert_path, key_path)


def server_context(
    *,
    hostnames: Sequence[str] = (),
    confdir: Path | None = None,
    cert: Path | None = None,
    key: Path | None = None,
) -> ssl.SSLContext:
    """``--cert/--key`` if given, else a certificate minted for ``--hostname``."""
    if cert is not None:
        return context_from_files(cert, key)
    if key is not None:
        raise TlsSetupError("--key needs --cert")
    return minted_context(hostnames, confdir)


__all__ = [
    "DEFAULT_CONFDIR",
    "TlsSetupError",
    "context_from_files",
    "mint",
    "minted_context",
    "server_context",
]
