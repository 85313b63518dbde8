"""Where a store's files live: a local directory or an object store (S3, GCS, ... through
`pyarrow.fs`). A backend reads, writes whole, publishes a staged artifact, lists and deletes;
what the files mean is the store's business (`store.py`)."""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from .errors import StoreError

MANIFEST = "manifest.json"  # an artifact's, written last: without it there is no artifact


class Backend(Protocol):
    root: str  # the store's root, as the backend names paths
    local: Path | None  # the root as a local path; None for an object store

    @property
    def fs(self) -> Any:
        """The pyarrow filesystem, for what needs one (copies, Parquet reads)."""

    def read(self, path: str) -> bytes | None:
        """A file's bytes, None if it does not exist."""

    def read_buffer(self, path: str) -> Any:
        """A file's bytes in memory Arrow owns (for Parquet reads: see `arrow_bytes`)."""

    def write(self, path: str, data: bytes) -> None:
        """Write a file whole or not at all, its parent directories made as needed."""

    def publish(
        self, staging: Path, final: str, files: Iterable[str], data: str | None, exists: Callable
    ) -> bool:
        """Put a staged artifact (its manifest last) at `final`, whole or not at all; False
        if a complete artifact (`exists()`) is there already and was kept."""

    def size(self, path: str) -> int | None:
        """A file's size, None if it is not a file."""

    def xxh3(self, path: str) -> str:
        """A file's content hash."""

    def files(self, base: str) -> set[str]:
        """The files under `base`, as paths relative to it."""

    def children(self, path: str) -> list[str]:
        """The names directly under a directory (none if it does not exist)."""

    def delete(self, path: str) -> None:
        """Remove a directory and everything under it, if it exists."""

    def staging_root(self) -> Path:
        """The local directory stagings are made in."""


def open_backend(uri: str) -> Backend:
    if not uri.strip() or uri.rstrip("/") in ("file:", "file:/"):
        raise StoreError(
            f"store {uri!r} names no place: give a directory or a URI such as s3://bucket/prefix"
        )
    if "://" in uri and not uri.startswith("file://"):
        import pyarrow.fs as pafs

        scheme, _, rest = uri.partition("://")
        if not rest.split("?", 1)[0].strip("/"):
            raise StoreError(f"store {uri!r} names no bucket: give {scheme}://BUCKET[/PREFIX]")
        try:
            fs, path = pafs.FileSystem.from_uri(_with_timeout(uri))
        except Exception as e:  # pyarrow raises several types here
            raise StoreError(f"cannot open store {uri}: {e}") from None
        return ObjectBackend(fs, path.rstrip("/"))
    return LocalBackend(Path(uri.removeprefix("file://")).expanduser().absolute())


def timeout() -> float:
    """Seconds a store or cluster connection may take to answer (`--timeout`)."""
    return float(os.environ.get("STARDAG_TIMEOUT", "30"))


def _with_timeout(uri: str) -> str:
    """A GCS store retries for up to 15 minutes by default: bound it by the timeout."""
    if uri.startswith("gs://") and "retry_limit_seconds=" not in uri:
        return uri + ("&" if "?" in uri else "?") + f"retry_limit_seconds={timeout():g}"
    return uri


def oserror(action: str, e: Exception) -> StoreError:
    """A store error saying what could not be done, and why in a few words."""
    reason = {
        errno.ENOSPC: "no space left on the device",
        errno.EACCES: "permission denied",
        errno.EROFS: "read-only file system",
        errno.EDQUOT: "disk quota exceeded",
        errno.EFBIG: "file size limit exceeded",
        errno.ENOENT: "no such file or directory",
    }
    code: int | None = getattr(e, "errno", None)
    if code is None:  # pyarrow's errors carry the errno in their text only
        import re

        found = re.search(r"\[errno (\d+)\]", str(e))
        code = int(found.group(1)) if found else None
    known = reason.get(code) if code is not None else None
    why = (known or getattr(e, "strerror", None) or str(e)).split(" error_info=")[0]
    if len(why) > 300:  # cloud clients explain at length
        why = why[:300] + "..."
    filename = getattr(e, "filename", None)
    return StoreError(f"store: cannot {action}: {why}" + (f" ({filename})" if filename else ""))


def arrow_bytes(fs, path: str):
    """A file's bytes in memory that Arrow owns. A Parquet read lets go of its source on one
    of Arrow's threads, possibly after it returned; if the source held Python bytes (what
    `read_buffer` of a non-seekable stream gives), that thread needs the GIL to free them,
    and at interpreter exit it aborts the process ("terminate called without an active
    exception"). A seekable file's `read_buffer` reads into Arrow's own memory."""
    with fs.open_input_file(path) as f:
        return f.read_buffer()


def write_atomic(path: str, data: bytes) -> None:
    """A local file written whole or not at all: a temporary file renamed into place."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.{uuid.uuid4().hex[:6]}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def local_cache() -> Path:
    """Where a remote store's models are copied to and its stagings are made."""
    return Path(os.environ.get("STARDAG_CACHE", Path.home() / ".cache" / "stardag"))


class LocalBackend:
    """A directory (local or NFS-mounted). Plain file calls: a cached run reads manifests
    without importing pyarrow."""

    def __init__(self, local: Path):
        self.local: Path | None = local
        self.root = local.as_posix()
        self._fs = None

    @property
    def fs(self):
        if self._fs is None:
            import pyarrow.fs as pafs

            self._fs = pafs.LocalFileSystem()
        return self._fs

    def read(self, path: str) -> bytes | None:
        try:
            with open(path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise oserror(f"read {path}", e) from None

    def read_buffer(self, path: str):
        return arrow_bytes(self.fs, path)

    def write(self, path: str, data: bytes) -> None:
        write_atomic(path, data)

    def publish(self, staging: Path, final: str, files, data, exists) -> bool:
        Path(final).parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(staging, final)
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            if exists():
                return False
            shutil.rmtree(final, ignore_errors=True)
            os.rename(staging, final)
        _read_only(Path(final))
        return True

    def size(self, path: str) -> int | None:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        return st.st_size if os.path.isfile(path) else None

    def xxh3(self, path: str) -> str:
        from .content_hash import file_hash

        return file_hash(path)

    def files(self, base: str) -> set[str]:
        return {
            os.path.relpath(os.path.join(d, f), base)
            for d, _, names in os.walk(base)
            for f in names
        }

    def children(self, path: str) -> list[str]:
        try:
            return os.listdir(path)
        except FileNotFoundError:
            return []

    def delete(self, path: str) -> None:
        shutil.rmtree(path, ignore_errors=True)

    def staging_root(self) -> Path:
        assert self.local is not None
        return self.local / "tmp"


def _read_only(root: Path):
    """A published artifact's files lose their write bits: an operator that opens an input
    for writing fails at once (a process with root's powers is caught after the stage, by
    the input check in the executor)."""
    for p in root.rglob("*"):
        if p.is_file():
            try:
                p.chmod(p.stat().st_mode & ~0o222)
            except OSError:
                pass


class ObjectBackend:
    """An object store: no directories and no rename, but a single object appears whole or
    not at all."""

    local: Path | None = None

    def __init__(self, fs, root: str):
        self.fs, self.root = fs, root

    def read(self, path: str) -> bytes | None:
        try:
            with self.fs.open_input_stream(path) as f:
                return f.read()
        except FileNotFoundError:
            return None
        except Exception as e:  # OSError, or pyarrow's ArrowException from a cloud client
            if "not found" in str(e).lower():
                return None
            if not isinstance(e, OSError) and type(e).__module__ != "pyarrow.lib":
                raise
            raise oserror(f"read {path}", e) from None

    def read_buffer(self, path: str):
        return arrow_bytes(self.fs, path)

    def write(self, path: str, data: bytes) -> None:
        with self.fs.open_output_stream(path) as f:
            f.write(data)

    def publish(self, staging: Path, final: str, files, data, exists) -> bool:
        # The files go under a directory of this publish's own (data-<nonce>), the manifest
        # naming it goes last: the artifact exists only once it is whole, and two runs
        # publishing the same key at once each write a complete set of files; whichever
        # manifest lands last names its own, so the artifact is valid either way.
        if exists():
            return False
        for rel in files:
            with (
                open(staging / rel, "rb") as src,
                self.fs.open_output_stream(f"{final}/{data}/{rel}") as dst,
            ):
                shutil.copyfileobj(src, dst, 1 << 22)
        with (
            open(staging / MANIFEST, "rb") as src,
            self.fs.open_output_stream(f"{final}/{MANIFEST}") as dst,
        ):
            dst.write(src.read())
        return True

    def size(self, path: str) -> int | None:
        import pyarrow.fs as pafs

        info = self.fs.get_file_info(path)
        return info.size if info.type == pafs.FileType.File else None

    def xxh3(self, path: str) -> str:
        import xxhash

        with self.fs.open_input_stream(path) as f:
            return xxhash.xxh3_128(f.read()).hexdigest()

    def files(self, base: str) -> set[str]:
        import pyarrow.fs as pafs

        infos = self.fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
        return {i.path[len(base) + 1 :] for i in infos if i.type == pafs.FileType.File}

    def children(self, path: str) -> list[str]:
        import pyarrow.fs as pafs

        selector = pafs.FileSelector(path, recursive=False, allow_not_found=True)
        return [i.base_name for i in self.fs.get_file_info(selector)]

    def delete(self, path: str) -> None:
        try:
            self.fs.delete_dir(path)
        except OSError:
            pass

    def staging_root(self) -> Path:
        return local_cache() / "tmp"
