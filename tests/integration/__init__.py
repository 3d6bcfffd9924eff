"""Integration tests: real processes (wstape record, mitmdump, websockets) on 127.0.0.1."""
