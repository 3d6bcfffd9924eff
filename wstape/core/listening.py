"""Saying where something listens, and why it could not: one wording for ``record``,
``replay`` and ``replay --via-proxy``."""

from __future__ import annotations

import errno


def format_hostport(host: str, port: int) -> str:
    """``127.0.0.1:8080``, ``[::1]:8080``."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listen_error(
    host: str, port: int, code: int | None, detail: str, *, port_option: str, who: str
) -> str:
    """One line for a failed bind of ``host:port`` (``code`` its errno, ``detail`` the
    error's text); ``port_option`` chooses another port, ``who`` is what may be holding
    it ("proxy", "replay")."""
    where = format_hostport(host or "*", port)
    if code == errno.EADDRINUSE:
        return (
            f"cannot listen on {where}: address already in use (another {who} running? "
            f"choose another {port_option}, or 0 for any free port)"
        )
    if code == errno.EACCES:
        return f"cannot listen on {where}: permission denied (ports below 1024 need root)"
    if code == errno.EADDRNOTAVAIL:
        return f"cannot listen on {where}: no such local address"
    first = detail.strip().splitlines()
    return f"cannot listen on {where}" + (f": {first[0]}" if first else "")


__all__ = ["format_hostport", "listen_error"]
