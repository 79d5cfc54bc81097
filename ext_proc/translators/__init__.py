"""Translators between the client APIs and the backend schemas, one module per pair."""
