"""mitmproxy addons: thin adapters from mitmproxy hooks to cassette records.

- :mod:`wstape.addons.recorder`: the ``Recorder`` addon (usable in any mitmproxy);
- :mod:`wstape.addons.script`: what ``mitmdump -s "$(wstape addon-path)"`` loads;
- :mod:`wstape.addons.runner`: mitmproxy run in-process with the recorder, the library
  function behind ``wstape record``.

This package imports nothing of mitmproxy itself, so ``wstape addon-path`` stays fast.
"""

from __future__ import annotations

from pathlib import Path

SCRIPT_PATH = Path(__file__).with_name("script.py")
"""The file to pass to ``mitmdump -s``/``mitmproxy -s``/``mitmweb -s``."""

__all__ = ["SCRIPT_PATH"]
