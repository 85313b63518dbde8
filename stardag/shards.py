"""The committed shards of a stage that is running: a stage killed in the middle finds them
when it runs again and computes only the others. They live under
`<root>/partial/<key[:2]>/<key>/` until the stage's artifact is published."""

from __future__ import annotations

import os

from .backends import Backend, oserror


class ShardLog:
    """Each shard is a Parquet file written whole (a temporary file renamed, or one object
    put) with page checksums; a shard that does not read back whole counts as absent."""

    def __init__(self, backend: Backend, base: str, name: str):
        self.backend, self.base, self.name = backend, base, name

    def _path(self, i: int) -> str:
        return f"{self.base}/{self.name}-{i:06d}.parquet"

    def location(self) -> tuple:
        """(pyarrow filesystem, or None for a local path; the stage's partial directory),
        for state that is not a table, such as a trainer's checkpoints."""
        if self.backend.local is not None:
            os.makedirs(self.base, exist_ok=True)
            return None, self.base
        return self.backend.fs, self.base

    def get(self, i: int):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            data = self.backend.read_buffer(self._path(i))
            return pq.read_table(pa.BufferReader(data), page_checksum_verification=True)
        except FileNotFoundError:
            return None
        except Exception:  # truncated or damaged: recompute that shard
            return None

    def put(self, i: int, table):
        import pyarrow as pa
        import pyarrow.parquet as pq

        buf = pa.BufferOutputStream()
        pq.write_table(table, buf, compression="zstd", write_page_checksum=True)
        try:
            self.backend.write(self._path(i), buf.getvalue().to_pybytes())
        except OSError as e:
            raise oserror("commit a shard", e) from None
