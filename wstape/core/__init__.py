"""The I/O-free core of wstape: data model, close codes, rule catalogue, matchers, lint."""
