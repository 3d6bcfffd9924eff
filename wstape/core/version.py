"""The package version (the cassette format has a version of its own: FORMAT_VERSION)."""

__version__ = "0.1.0"
