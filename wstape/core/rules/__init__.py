"""The rule catalogue of RULES.md: data, profiles and one pure check per rule.

Import everything rule-related from here; the ``rules_*`` modules are an implementation
split. Every check takes frozen model objects plus a :class:`RuleConfig` and returns a
``list[Violation]`` (empty when the client behaved); none does I/O or raises on bad
client input. See docs/rules.md for the generated table of rules.

- :mod:`.rules_catalogue`: Severity, Profile, Violation, RuleConfig, Rule, CATALOGUE.
- :mod:`.rules_handshake`: the upgrade request and the server's answer (RFC 6455 §4).
- :mod:`.rules_frames`: client frames and messages (§5).
- :mod:`.rules_close`: the client's Close (§5.5.1, §7.4, WHATWG close(), wx close()).
- :mod:`.rules_session`: concurrency, reconnects, timeouts, and the replay-only rules.
"""

from __future__ import annotations

from wstape.core.rules.catalogue import (
    CATALOGUE,
    PLATFORMS,
    RULES_BY_ID,
    WX_APPID,
    Platform,
    Profile,
    Rule,
    RuleConfig,
    Severity,
    Violation,
    catalogue_markdown,
    get_rule,
    is_active,
    profile_includes,
    rules_for,
    unknown_rule_ids,
    violation,
)
from wstape.core.rules.close import (
    MAX_REASON_BYTES,
    check_client_close,
    check_close_changed,
    check_close_handshake,
    close_body,
    parse_close_body,
)
from wstape.core.rules.frames import (
    MAX_CONTROL_PAYLOAD,
    FrameState,
    Utf8Stream,
    check_frame,
    check_pong,
    check_text,
)
from wstape.core.rules.handshake import (
    GUID,
    WX_REFERER,
    accept_key,
    check_early_data,
    check_request,
    check_response,
    check_server_close,
    check_subprotocol_change,
    is_ip_literal,
    is_lan_host,
    key_problem,
    offered_extensions,
    offered_subprotocols,
    request_host,
    wechat_platform,
)
from wstape.core.rules.session import (
    PAYLOAD_PREVIEW_BYTES,
    RECONNECT_BURST,
    RECONNECT_WINDOW,
    WARN_SOCKETS,
    WX_CONNECT_TIMEOUT,
    ReconnectEpisode,
    check_connect_timeout,
    check_reconnects,
    check_socket_limit,
    client_silent,
    message_json,
    message_mismatch,
    send_type,
    unmatched_connection,
    unplayed,
)

__all__ = [
    "CATALOGUE",
    "GUID",
    "MAX_CONTROL_PAYLOAD",
    "MAX_REASON_BYTES",
    "PAYLOAD_PREVIEW_BYTES",
    "PLATFORMS",
    "RECONNECT_BURST",
    "RECONNECT_WINDOW",
    "RULES_BY_ID",
    "WARN_SOCKETS",
    "WX_APPID",
    "WX_CONNECT_TIMEOUT",
    "WX_REFERER",
    "FrameState",
    "Platform",
    "Profile",
    "ReconnectEpisode",
    "Rule",
    "RuleConfig",
    "Severity",
    "Utf8Stream",
    "Violation",
    "accept_key",
    "catalogue_markdown",
    "check_client_close",
    "check_close_changed",
    "check_close_handshake",
    "check_connect_timeout",
    "check_early_data",
    "check_frame",
    "check_pong",
    "check_reconnects",
    "check_request",
    "check_response",
    "check_server_close",
    "check_socket_limit",
    "check_subprotocol_change",
    "check_text",
    "client_silent",
    "close_body",
    "get_rule",
    "is_active",
    "is_ip_literal",
    "is_lan_host",
    "key_problem",
    "message_json",
    "message_mismatch",
    "offered_extensions",
    "offered_subprotocols",
    "parse_close_body",
    "profile_includes",
    "request_host",
    "rules_for",
    "send_type",
    "unknown_rule_ids",
    "unmatched_connection",
    "unplayed",
    "violation",
    "wechat_platform",
]
