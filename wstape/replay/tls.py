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
from dataclasses import dataclass, field
from pathlib import Path

from wstape.core.errors import ConfigError, WstapeError

DEFAULT_CONFDIR = Path("~/.mitmproxy")


class TlsSetupError(WstapeError):
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
        raise TlsSetupError("a minted certificate needs at least one hostname")
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


@dataclass(frozen=True)
class TlsOptions:
    """How ``wss://`` is served: a certificate for ``hostnames`` minted from the mitmproxy
    CA in ``confdir``, your own ``cert``/``key`` (PEM), or a ready ``context``.

    Raises ConfigError when none of the three is given, or a key without its certificate.
    """

    hostnames: tuple[str, ...] = ()
    confdir: Path | None = None
    """mitmproxy's configuration directory holding the CA (default ``~/.mitmproxy``)."""
    cert: Path | None = None
    key: Path | None = None
    context: ssl.SSLContext | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hostnames", tuple(self.hostnames))
        if self.key is not None and self.cert is None:
            raise ConfigError("a TLS key needs its certificate (cert)")
        if self.context is None and self.cert is None and not self.hostnames:
            raise ConfigError(
                "TLS needs a hostname for a certificate minted from the mitmproxy CA, "
                "or a certificate and key"
            )

    @property
    def ca_path(self) -> Path | None:
        """The CA file a client must trust for a minted certificate (None for your own)."""
        if self.context is not None or self.cert is not None:
            return None
        return (self.confdir or DEFAULT_CONFDIR).expanduser() / "mitmproxy-ca-cert.pem"

    def server_context(self) -> ssl.SSLContext:
        """The server context (raises TlsSetupError when it cannot be made)."""
        if self.context is not None:
            return self.context
        if self.cert is not None:
            return context_from_files(self.cert, self.key)
        return minted_context(self.hostnames, self.confdir)


__all__ = [
    "DEFAULT_CONFDIR",
    "TlsOptions",
    "TlsSetupError",
    "context_from_files",
    "mint",
    "minted_context",
]
