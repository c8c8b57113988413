"""Identify and identify push."""

from .service import PROTOCOL_ID, PUSH_PROTOCOL_ID, IdentifyInfo, IdentifyService

__all__ = ["PROTOCOL_ID", "PUSH_PROTOCOL_ID", "IdentifyInfo", "IdentifyService"]
