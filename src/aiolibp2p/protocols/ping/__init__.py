"""Ping."""

from .service import PROTOCOL_ID, PingService

__all__ = ["PROTOCOL_ID", "PingService"]
