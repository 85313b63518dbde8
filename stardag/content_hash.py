"""Content hashes of artifacts: of an Arrow table's data (not of the files a writer made),
and of a directory's files. xxh3-128, streamed, so hashing runs at memory speed."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from .operator import logical_type


class _HashSink:
    """A file-like sink for Arrow's IPC writer that hashes instead of storing."""

    def __init__(self, h):
        self.h, self.closed = h, False

    def write(self, data) -> int:
        self.h.update(data)
        return len(data)

    def flush(self):
        pass

    def close(self):
        self.closed = True


def _canonical_type(t: pa.DataType) -> pa.DataType:
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.large_string()
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.large_binary()
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t):
        return pa.large_list(_canonical_type(t.value_type))
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(_canonical_type(f.type)) for f in t])
    if pa.types.is_dictionary(t):
        return _canonical_type(t.value_type)
    return t


def canonical_table(table: pa.Table) -> pa.Table:
    """One physical form per logical table (large offsets, no dictionaries, no schema
    metadata), so that polars and pyarrow outputs of the same values store and hash alike."""
    schema = pa.schema([f.with_type(_canonical_type(f.type)) for f in table.schema])
    if schema != table.schema.remove_metadata():
        table = table.cast(schema)
    return table.replace_schema_metadata(None)


def table_hash(table: pa.Table) -> str:
    """Hash of the logical schema and the values of a table. Chunking, physical string
    types, schema metadata, bits past the end of validity bitmaps and values under nulls do
    not count."""
    h = xxhash.xxh3_128()
    table = canonical_table(table).combine_chunks()
    h.update(repr([(f.name, logical_type(f.type)) for f in table.schema]).encode())
    for column in table.columns:
        for chunk in column.chunks:
            _hash_array(h, chunk)
    return h.hexdigest()


def _hash_array(h, arr: pa.Array):
    t = arr.type
    h.update(f"{t}|{len(arr)}|{arr.null_count};".encode())
    if arr.null_count:
        valid = arr.is_valid()
        h.update(np.packbits(valid.to_numpy(zero_copy_only=False)).tobytes())
        arr = arr.filter(valid)
    if pa.types.is_large_list(t):
        h.update(pc.list_value_length(arr).to_numpy(zero_copy_only=False).tobytes())
        _hash_array(h, arr.flatten())
    elif pa.types.is_struct(t):
        for child in arr.flatten():
            _hash_array(h, child)
    elif pa.types.is_boolean(t):
        h.update(np.packbits(arr.to_numpy(zero_copy_only=False)).tobytes())
    else:
        # A null-free flat array: its IPC form (Arrow rebases offsets of sliced arrays).
        batch = pa.record_batch([arr], names=["c"])
        with pa.ipc.new_stream(pa.PythonFile(_HashSink(h), mode="w"), batch.schema) as w:
            w.write_batch(batch)


def file_hash(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def directory_hash(files: dict[str, str]) -> str:
    """Hash of a directory from {relative path: file hash}."""
    h = xxhash.xxh3_128()
    for rel in sorted(files):
        h.update(rel.encode() + b"\0" + files[rel].encode() + b"\0")
    return h.hexdigest()


def hash_directory(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): file_hash(p) for p in sorted(root.rglob("*")) if p.is_file()
    }
