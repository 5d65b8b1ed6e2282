"""Fixtures for the client-app tests."""

from tests.clients.world import world

__all__ = ["world"]
