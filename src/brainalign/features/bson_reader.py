"""Read BSON files: the EMPA / DDQN regressors of OpenNeuro ds004323 (the gameplay study's RL baselines).

The dataset's behaviour and model regressors live in a MongoDB dump
(``behavior/dump.tar.gz``: collections ``regressors`` (EMPA) and
``dqn_regressors_25M`` (DDQN) as ``<collection>.bson``, i.e. BSON documents
written back to back); Julia's BSON.jl writes the same binary format (one
document per file, arrays as ``{"tag": "array", "type": ..., "size": ...,
"data": <binary>}``). Both are read here.

The decoder is hand-written because the ``bson`` module of ``pymongo`` is
not installed in this environment (and the unrelated PyPI package named
``bson`` shadows it when both are); it covers the types these files use:
embedded documents, arrays, doubles, strings, binary, ObjectId, booleans,
UTC datetimes, null, int32, timestamps, int64 and decimal128 (as raw bytes).
Anything else raises a ValueError naming the type byte and the offset.
BSON.jl arrays of primitive element types are decoded (:func:`julia_array`);
its back-references (``tag: "backref"``) and Julia structs are left as the
documents they are stored as.

Import path for the regressors (their exact field names are not documented
in the dataset; list them with :func:`describe_documents`):

1. ``mongorestore``-free: untar ``behavior/dump.tar.gz`` and point
   :func:`bson_regressor_features` at ``dump/<db>/dqn_regressors_25M.bson``;
2. select the documents of one subject / run with ``where={"subj_id": ...,
   "run_id": ...}``;
3. name the numeric ``field`` holding the per-frame (or per-TR) rows.
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["decode_bson", "read_bson", "describe_documents", "bson_regressor_features", "julia_array", "field_rows",
           "stack_field"]


class _Reader:
    def __init__(self, buf: bytes, where: str):
        self.buf, self.where = buf, where

    def fail(self, msg: str, pos: int):
        raise ValueError(f"{self.where}: {msg} at byte {pos}; the file is not valid BSON or uses an unsupported type.")

    def cstring(self, pos: int) -> tuple[str, int]:
        end = self.buf.find(b"\x00", pos)
        if end < 0:
            self.fail("unterminated key", pos)
        return self.buf[pos:end].decode("utf-8"), end + 1

    def document(self, pos: int, as_array: bool = False) -> tuple[Any, int]:
        if pos + 5 > len(self.buf):
            self.fail("truncated document", pos)
        (size,) = struct.unpack_from("<i", self.buf, pos)
        end = pos + size
        if size < 5 or end > len(self.buf) or self.buf[end - 1] != 0:
            self.fail(f"bad document length {size}", pos)
        out: dict[str, Any] = {}
        p = pos + 4
        while p < end - 1:
            kind = self.buf[p]
            key, p = self.cstring(p + 1)
            out[key], p = self.value(kind, p)
        if p != end - 1:
            self.fail("document length does not match its elements", pos)
        return (list(out.values()) if as_array else out), end

    def value(self, kind: int, p: int) -> tuple[Any, int]:
        b = self.buf
        if kind == 0x01:  # double
            return struct.unpack_from("<d", b, p)[0], p + 8
        if kind == 0x02:  # string
            (n,) = struct.unpack_from("<i", b, p)
            return b[p + 4 : p + 3 + n].decode("utf-8"), p + 4 + n
        if kind in (0x03, 0x04):  # document, array
            return self.document(p, as_array=kind == 0x04)
        if kind == 0x05:  # binary: int32 length, subtype byte, bytes
            (n,) = struct.unpack_from("<i", b, p)
            return bytes(b[p + 5 : p + 5 + n]), p + 5 + n
        if kind == 0x07:  # ObjectId
            return b[p : p + 12].hex(), p + 12
        if kind == 0x08:  # bool
            return bool(b[p]), p + 1
        if kind == 0x09:  # UTC datetime, ms since epoch
            return np.datetime64(struct.unpack_from("<q", b, p)[0], "ms"), p + 8
        if kind == 0x0A:  # null
            return None, p
        if kind == 0x10:  # int32
            return struct.unpack_from("<i", b, p)[0], p + 4
        if kind == 0x11:  # timestamp
            return struct.unpack_from("<Q", b, p)[0], p + 8
        if kind == 0x12:  # int64
            return struct.unpack_from("<q", b, p)[0], p + 8
        if kind == 0x13:  # decimal128, kept raw
            return bytes(b[p : p + 16]), p + 16
        self.fail(f"unsupported BSON type 0x{kind:02x}", p)


def decode_bson(data: bytes, where: str = "data") -> list[dict[str, Any]]:
    """Every BSON document in ``data`` (one document, or several back to back as in a mongodump file)."""
    reader = _Reader(bytes(data), where)
    docs, pos = [], 0
    while pos < len(reader.buf):
        doc, pos = reader.document(pos)
        docs.append(doc)
    return docs


def read_bson(path: str | Path) -> list[dict[str, Any]]:
    """Documents of a ``.bson`` file (mongodump collection or BSON.jl file)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path={str(path)!r} does not exist; give a .bson file (e.g. dump/<db>/regressors.bson).")
    return decode_bson(path.read_bytes(), where=str(path))


_JULIA_DTYPES = {"Float64": "<f8", "Float32": "<f4", "Int64": "<i8", "Int32": "<i4", "UInt8": "u1", "Bool": "?"}


def julia_array(value: Any) -> np.ndarray | None:
    """A BSON.jl array document (``tag == "array"``, primitive element type) as a numpy array, else None.

    Julia stores arrays column-major; the result has Julia's shape.
    """
    if not (isinstance(value, dict) and value.get("tag") == "array" and isinstance(value.get("data"), bytes)):
        return None
    type_name = value.get("type", {}).get("name", [])
    name = type_name[-1] if type_name else None
    if name not in _JULIA_DTYPES:
        raise ValueError(f"Julia array of element type {name!r}; supported: {', '.join(_JULIA_DTYPES)}.")
    size = [int(s) for s in value.get("size", [])]
    return np.frombuffer(value["data"], dtype=_JULIA_DTYPES[name]).reshape(size, order="F")


def describe_documents(docs: list[dict[str, Any]], limit: int = 3) -> list[dict[str, str]]:
    """Field name -> short type description of the first ``limit`` documents (to find the regressor fields)."""
    def describe(v):
        if isinstance(v, list):
            return f"array[{len(v)}]" + (f" of {describe(v[0])}" if v else "")
        if isinstance(v, dict):
            arr = julia_array(v)
            return f"julia {arr.dtype}{list(arr.shape)}" if arr is not None else f"document({', '.join(v)})"
        return type(v).__name__
    return [{k: describe(v) for k, v in d.items()} for d in docs[:limit]]


def _rows(value: Any, where: str) -> np.ndarray:
    arr = julia_array(value)
    if arr is None:
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"{where} is not numeric (or its rows have different lengths); name a field holding numbers, "
                "a list of equal-length number lists, or a Julia array."
            ) from None
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number) and arr.dtype != bool:
        raise ValueError(f"{where} has dtype {arr.dtype}; it must be numeric.")
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim == 0:  # one number: a row of one
        arr = arr[None, None]
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2:
        raise ValueError(f"{where} has shape {arr.shape}; expected a row of numbers or (n_rows, dim).")
    return arr


def bson_regressor_features(
    path: str | Path, field: str, *, where: dict[str, Any] | None = None, sort_by: str | None = None,
) -> np.ndarray:
    """Regressor rows from a ``.bson`` file as (n_rows, dim) float32.

    Parameters
    ----------
    path : .bson file
    field : str
        Field of each selected document holding a row of numbers, a list of
        equal-length rows, or a Julia array (dots reach into sub-documents:
        ``"regs.value"``).
    where : dict, optional
        Keep documents whose fields equal these values (e.g. ``{"subj_id": 1,
        "run_id": 2}``).
    sort_by : str, optional
        Order the documents by this field first (e.g. a frame or TR index).

    Returns
    -------
    float32 (n_rows, dim): the selected documents' rows stacked in order.
    """
    docs = read_bson(path)
    where = dict(where or {})
    chosen = [d for d in docs if all(d.get(k) == v for k, v in where.items())]
    if not chosen:
        raise ValueError(f"no document of {str(path)!r} matches where={where!r} (it has {len(docs)} documents).")
    if sort_by is not None:
        missing = [i for i, d in enumerate(chosen) if sort_by not in d]
        if missing:
            raise ValueError(f"sort_by={sort_by!r}: {len(missing)} selected documents lack that field.")
        chosen = sorted(chosen, key=lambda d: d[sort_by])
    return stack_field(chosen, field)


def field_rows(doc: dict[str, Any], field: str, i: int = 0) -> np.ndarray:
    """The rows one document holds in ``field`` (dots reach into sub-documents), float64 (n_rows, dim).

    Raises
    ------
    ValueError
        When the field is missing (naming the document's fields) or not numeric.
    """
    value: Any = doc
    for part in field.split("."):
        if not isinstance(value, dict) or part not in value:
            fields = ", ".join(describe_documents([doc])[0])
            raise ValueError(f"field={field!r} is missing from a selected document (its fields: {fields}).")
        value = value[part]
    return _rows(value, f"field {field!r} of document {i}")


def stack_field(docs: list[dict[str, Any]], field: str) -> np.ndarray:
    """The rows of ``field`` of every document, stacked in order: float32 (n_rows, dim)."""
    rows = [field_rows(doc, field, i) for i, doc in enumerate(docs)]
    dims = {r.shape[1] for r in rows}
    if len(dims) != 1:
        raise ValueError(f"field={field!r} has rows of different lengths across documents: {sorted(dims)}.")
    return np.concatenate(rows).astype(np.float32)
