"""Fixtures for the browser tests: the same gateway and Mastodon stand-in as the client tests."""

from tests.clients.world import world

__all__ = ["world"]
