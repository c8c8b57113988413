"""Structured logging: peer, connection id and protocol on every log record that concerns them.

Nothing is logged differently; a :class:`ContextFilter` on a handler *reads* each record and sets three
attributes, ``peer``, ``conn_id`` and ``protocol`` (``"-"`` when unknown), taken from, in order:

1. ``extra=`` given to the log call (or a :class:`PeerLoggerAdapter` — see :func:`stream_logger`);
2. the arguments of the log call: a :class:`~aiolibp2p.network.connection.Connection`, a
   :class:`~aiolibp2p.network.connection.Stream` or a :class:`~aiolibp2p.crypto.peer_id.PeerId` (the library
   logs these as ``log.debug("connection opened: %r", conn)``);
3. the context set with :func:`log_context` (a ``contextvars`` value, so it follows tasks spawned inside).

Enable it in one call (or use ``aiolibp2p --log-format json ...`` on the command line)::

    from aiolibp2p.logs import enable_structured_logging
    enable_structured_logging("DEBUG", json=True)   # one JSON object per line on stderr

or attach the pieces to your own handler::

    handler.addFilter(ContextFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s peer=%(peer)s conn=%(conn_id)s "
                                           "proto=%(protocol)s %(message)s"))
"""

from __future__ import annotations

import contextlib
import contextvars
import json as _json
import logging
import sys
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any, TextIO

from .crypto.peer_id import PeerId
from .network.connection import Connection, Stream

FIELDS = ("peer", "conn_id", "protocol")
TEXT_FORMAT = (
    "%(asctime)s %(levelname)s %(name)s [peer=%(peer)s conn=%(conn_id)s proto=%(protocol)s] %(message)s"
)

_context: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "aiolibp2p_log_context", default=None
)


def _fields_of(obj: object) -> dict[str, str]:
    if isinstance(obj, Stream):
        return {"peer": str(obj.conn.remote_peer), "conn_id": str(obj.conn.id), "protocol": obj.protocol}
    if isinstance(obj, Connection):
        return {"peer": str(obj.remote_peer), "conn_id": str(obj.id)}
    if isinstance(obj, PeerId):
        return {"peer": str(obj)}
    return {}


def context_fields(*objs: object, **fields: object) -> dict[str, str]:
    """The log fields described by streams, connections, peer IDs and explicit ``peer=``/``conn_id=``/
    ``protocol=`` values (later ones win)."""
    out: dict[str, str] = {}
    for o in objs:
        out.update(_fields_of(o))
    for k, v in fields.items():
        if k not in FIELDS:
            raise TypeError(f"unknown log field {k!r} (expected one of {FIELDS})")
        if v is not None:
            out[k] = str(v)
    return out


@contextlib.contextmanager
def log_context(*objs: object, **fields: object) -> Iterator[None]:
    """Within the block (and tasks created in it), records without their own fields get these::

    with log_context(stream):            # or log_context(peer=pid, protocol="/chat/1.0.0")
        log.info("received %d bytes", n)
    """
    merged = dict(_context.get() or {})
    merged.update(context_fields(*objs, **fields))
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    """Sets ``record.peer``, ``record.conn_id`` and ``record.protocol`` on every record; never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        found: dict[str, str] = dict(_context.get() or {})
        args = record.args
        if isinstance(args, tuple):
            for a in args:
                found.update(_fields_of(a))
        elif isinstance(args, Mapping):
            for a in args.values():
                found.update(_fields_of(a))
        for f in FIELDS:
            v = getattr(record, f, None)
            if v is None:
                setattr(record, f, found.get(f, "-"))
        return True


class PeerLoggerAdapter(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger whose records carry fixed peer / connection / protocol fields."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        extra = dict(self.extra or {})
        extra.update(kwargs.get("extra") or {})
        kwargs["extra"] = extra
        return msg, kwargs


def stream_logger(logger: logging.Logger | str, *objs: object, **fields: object) -> PeerLoggerAdapter:
    """A logger for one stream (or connection, or peer)::

    async def handler(stream):
        log = stream_logger(__name__, stream)
        log.info("hello")            # peer=12D3KooW... conn=3 proto=/chat/1.0.0
    """
    lg = logging.getLogger(logger) if isinstance(logger, str) else logger
    return PeerLoggerAdapter(lg, context_fields(*objs, **fields))


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message, peer, conn_id, protocol (and exc)."""

    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for f in FIELDS:
            v = getattr(record, f, "-")
            if v != "-":
                obj[f] = v
        if record.exc_info:
            obj["exc"] = self.formatException(record.exc_info)
        return _json.dumps(obj, separators=(",", ":"))


def enable_structured_logging(
    level: int | str = "INFO",
    *,
    json: bool = False,
    stream: TextIO | None = None,
    logger: str = "",
) -> logging.Handler:
    """Install a stderr handler (on the root logger by default) that carries the peer/connection/protocol
    fields: as ``key=value`` text, or one JSON object per line with ``json=True``. Returns the handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if json else logging.Formatter(TEXT_FORMAT))
    lg = logging.getLogger(logger)
    lg.addHandler(handler)
    lg.setLevel(level.upper() if isinstance(level, str) else level)
    return handler
