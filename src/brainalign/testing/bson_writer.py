"""A minimal BSON writer for test fixtures (mongodump ``.bson`` files: documents back to back).

Written for the tests, independently of the decoder in :mod:`brainalign.features.bson_reader`: a file it writes
is read back there, so the two must agree on the format (bsonspec.org) without sharing code. Covers the types the
fixtures use: bool, double, int32 / int64, string, binary, array and embedded document.
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, Iterable

__all__ = ["encode_value", "encode_document", "write_bson"]


def encode_value(v: Any) -> tuple[int, bytes]:
    """(BSON type byte, encoded value) of one Python value."""
    if isinstance(v, bool):
        return 0x08, bytes([v])
    if isinstance(v, float):
        return 0x01, struct.pack("<d", v)
    if isinstance(v, int):
        return (0x10, struct.pack("<i", v)) if -2**31 <= v < 2**31 else (0x12, struct.pack("<q", v))
    if isinstance(v, str):
        raw = v.encode() + b"\x00"
        return 0x02, struct.pack("<i", len(raw)) + raw
    if isinstance(v, bytes):
        return 0x05, struct.pack("<i", len(v)) + b"\x00" + v
    if isinstance(v, (list, tuple)):
        return 0x04, encode_document({str(i): x for i, x in enumerate(v)})
    if isinstance(v, dict):
        return 0x03, encode_document(v)
    raise TypeError(f"cannot encode {type(v).__name__} as BSON here: {v!r}")


def encode_document(d: dict[str, Any]) -> bytes:
    """One BSON document: int32 total length, the elements, a terminating zero byte."""
    body = b""
    for k, v in d.items():
        kind, raw = encode_value(v)
        body += bytes([kind]) + k.encode() + b"\x00" + raw
    return struct.pack("<i", len(body) + 5) + body + b"\x00"


def write_bson(path: str | Path, docs: Iterable[dict[str, Any]]) -> Path:
    """Write ``docs`` back to back, as mongodump writes a collection; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(encode_document(d) for d in docs))
    return path
