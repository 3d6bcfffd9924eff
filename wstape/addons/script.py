"""Load the wstape recorder into your own mitmproxy.

    mitmdump -s "$(wstape addon-path)" --set wstape_cassette=chat.msgpack

mitmproxy must run in the Python environment where wstape is installed. Options:
``wstape_cassette``, ``wstape_append``, ``wstape_overwrite``, ``wstape_filter``,
``wstape_default_redaction``, ``wstape_redact_headers``, ``wstape_redact_json_keys``,
``wstape_redact_query``, ``wstape_secret_env``, ``wstape_secret_file``,
``wstape_trim_messages`` (see
``mitmdump --options`` or docs/recording.md). Give this script first among your ``-s``
scripts so it records messages before any other addon modifies them.
"""

from wstape.addons.recorder import ScriptRecorder

addons = [ScriptRecorder()]
