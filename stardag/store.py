"""The artifact store: content-checked artifacts under a root reached through `pyarrow.fs`.

    <root>/objects/<key[:2]>/<key>/manifest.json     written last; an artifact without it
    <root>/objects/<key[:2]>/<key>/<output>/...      does not exist (on an object store the
                                                     files sit under data-<nonce>/, named by
                                                     the manifest: see _publish_remote)
    <root>/tmp/<key>.<host>.<pid>.<rand>/            staging: renamed into objects/ whole
    <root>/refs/<spec>/<node>.json                   what each stage last resolved to
    <root>/quarantine/                               corrupt artifacts, kept for a look
    <root>/leases/<key>.json                         who is computing a key, until when
    <root>/partial/<key>/                            shards a running stage has committed

Datasets are Parquet files, models are directories of files (safetensors, config,
tokenizer). Every file's size and xxh3 are in the manifest and checked when read. No pickle.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import CorruptArtifact, StoreError
from .fingerprint import FORMAT_VERSION

MANIFEST = "manifest.json"
STAGING_MARK = ".staging"  # made by `begin`; its absence at publish means the staging was lost


def resolve_root(uri: str):
    """(filesystem, root path in it, local root or None for remote stores). A local store's
    filesystem is None until needed: a cached run reads manifests with plain file calls and
    need not import pyarrow."""
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
        return fs, path.rstrip("/"), None
    local = Path(uri.removeprefix("file://")).expanduser().absolute()
    return None, local.as_posix(), local


def timeout() -> float:
    """Seconds a store or cluster connection may take to answer (`--timeout`)."""
    return float(os.environ.get("STARDAG_TIMEOUT", "30"))


def _with_timeout(uri: str) -> str:
    """A GCS store retries for up to 15 minutes by default: bound it by the timeout."""
    if uri.startswith("gs://") and "retry_limit_seconds=" not in uri:
        return uri + ("&" if "?" in uri else "?") + f"retry_limit_seconds={timeout():g}"
    return uri


def _oserror(action: str, e: Exception) -> StoreError:
    reason = {
        errno.ENOSPC: "no space left on the device",
        errno.EACCES: "permission denied",
        errno.EROFS: "read-only file system",
        errno.EDQUOT: "disk quota exceeded",
        errno.EFBIG: "file size limit exceeded",
        errno.ENOENT: "no such file or directory",
    }
    code = getattr(e, "errno", None)
    if code is None:  # pyarrow's errors carry the errno in their text only
        import re

        found = re.search(r"\[errno (\d+)\]", str(e))
        code = int(found.group(1)) if found else None
    why = reason.get(code, getattr(e, "strerror", None) or str(e)).split(" error_info=")[0]
    if len(why) > 300:  # cloud clients explain at length
        why = why[:300] + "..."
    return StoreError(
        f"store: cannot {action}: {why}"
        + (f" ({e.filename})" if getattr(e, "filename", None) else "")
    )


@dataclass
class Staging:
    """A stage's output being written: local directories, published whole or not at all."""

    key: str
    path: Path

    def output_dir(self, name: str) -> Path:
        d = self.path / name
        self.check()
        d.mkdir(exist_ok=True)
        return d

    def check(self):
        """The staging directory must still be the one `begin` made: if the store (or its
        tmp/) was deleted under the run, whatever the stage wrote before is gone with it,
        and publishing what is left would make an incomplete artifact look whole."""
        if not (self.path / STAGING_MARK).exists():
            raise StoreError(
                f"store: the staging directory of this stage vanished while it ran "
                f"({self.path}): was the store deleted or cleaned under the run?"
            )


def _local_cache() -> Path:
    """Where a remote store's models are copied to and its stagings are made."""
    return Path(os.environ.get("STARDAG_CACHE", Path.home() / ".cache" / "stardag"))


def _recorded_key(m: dict) -> str | None:
    """The key that the record a manifest holds hashes to (None if it holds none)."""
    from .fingerprint import StageKey

    try:
        return StageKey.from_json(m.get("record")).digest
    except (ValueError, TypeError, AttributeError):
        return None


def _arrow_bytes(fs, path: str):
    """A file's bytes in memory that Arrow owns. A Parquet read lets go of its source on one
    of Arrow's threads, possibly after it returned; if the source held Python bytes (what
    `read_buffer` of a non-seekable stream gives), that thread needs the GIL to free them,
    and at interpreter exit it aborts the process ("terminate called without an active
    exception"). A seekable file's `read_buffer` reads into Arrow's own memory."""
    with fs.open_input_file(path) as f:
        return f.read_buffer()


def _malformed(m: dict) -> str | None:
    """What is wrong with the shape of a manifest's outputs and files, or None."""
    outputs, files = m.get("outputs"), m.get("files")
    if not isinstance(outputs, dict) or not outputs:
        return "has no outputs"
    if not isinstance(files, dict):
        return "has no file list"
    for name, out in outputs.items():
        if not (
            isinstance(out, dict)
            and out.get("kind") in ("dataset", "model")
            and isinstance(out.get("content_hash"), str)
        ):
            return f"describes output {name!r} badly"
        if out["kind"] == "dataset" and not isinstance(out.get("rows"), int):
            return f"gives no row count for output {name!r}"
        if not any(rel.startswith(name + "/") for rel in files):
            return f"lists no file of output {name!r}"
    for rel, meta in files.items():
        if not (
            isinstance(meta, dict)
            and isinstance(meta.get("size"), int)
            and isinstance(meta.get("xxh3"), str)
        ):
            return f"describes file {rel} badly"
        if rel.split("/", 1)[0] not in outputs or ".." in rel.split("/"):
            return f"lists file {rel}, of no output"
    return None


_LEASE_SETTLE = 0.3  # seconds a lease taker waits before reading back whose lease it is


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


class ShardLog:
    """The committed shards of a stage that is running: a stage killed in the middle finds
    them when it runs again and computes only the others. Each shard is a Parquet file
    written whole (a temporary file renamed, or one object put) with page checksums; a shard
    that does not read back whole counts as absent."""

    def __init__(self, store: Store, base: str, name: str):
        self.store, self.base, self.name = store, base, name

    def _path(self, i: int) -> str:
        return f"{self.base}/{self.name}-{i:06d}.parquet"

    def location(self) -> tuple:
        """(pyarrow filesystem, or None for a local path; the stage's partial directory),
        for state that is not a table, such as a trainer's checkpoints."""
        if self.store.local is not None:
            os.makedirs(self.base, exist_ok=True)
            return None, self.base
        return self.store.fs, self.base

    def get(self, i: int):
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = self._path(i)
        try:
            if self.store.local is not None:
                if not os.path.exists(path):
                    return None
                return pq.read_table(path, page_checksum_verification=True)
            return pq.read_table(
                pa.BufferReader(_arrow_bytes(self.store.fs, path)), page_checksum_verification=True
            )
        except FileNotFoundError:
            return None
        except Exception:  # truncated or damaged: recompute that shard
            return None

    def put(self, i: int, table):
        import pyarrow as pa
        import pyarrow.parquet as pq

        buf = pa.BufferOutputStream()
        pq.write_table(table, buf, compression="zstd", write_page_checksum=True)
        data = buf.getvalue().to_pybytes()
        path = self._path(i)
        try:
            if self.store.local is not None:
                os.makedirs(self.base, exist_ok=True)
                tmp = f"{path}.{os.getpid()}.tmp"
                with open(tmp, "wb") as f:
                    f.write(data)
                os.replace(tmp, path)
            else:
                with self.store.fs.open_output_stream(path) as f:
                    f.write(data)
        except OSError as e:
            raise _oserror("commit a shard", e) from None


class Store:
    def __init__(self, uri: str | os.PathLike):
        self.uri = str(uri)
        self._fs, self.root, self.local = resolve_root(self.uri)

    @property
    def fs(self):
        """The pyarrow filesystem of the store."""
        if self._fs is None:
            import pyarrow.fs as pafs

            self._fs = pafs.LocalFileSystem()
        return self._fs

    # --- paths ------------------------------------------------------------------------
    def _obj(self, key: str) -> str:
        if len(key) < 8 or not all(c in "0123456789abcdef" for c in key):
            raise StoreError(f"not an artifact key: {key!r}")
        return f"{self.root}/objects/{key[:2]}/{key}"

    def _files(self, key: str, m: dict) -> str:
        """Where the files of artifact `key` (manifest `m`) are."""
        data = m.get("data")
        if data is None:
            return self._obj(key)
        if not (isinstance(data, str) and data.startswith("data-") and data[5:].isalnum()):
            raise CorruptArtifact(key, f"manifest names a bad data directory {data!r}")
        return f"{self._obj(key)}/{data}"

    def _partial(self, key: str) -> str:
        """`<root>/partial/<key[:2]>/<key>`: the shards and checkpoints of a running stage."""
        return self._obj(key).replace("/objects/", "/partial/", 1)

    def _named(self, kind: str, *parts: str) -> str:
        """`<root>/<kind>/<part>/.../<last>.json` for names that cannot leave the root."""
        for part in parts:
            if not part or "/" in part or "\\" in part or part in (".", "..") or "\0" in part:
                raise StoreError(f"unsafe name for the store: {part!r}")
        return f"{self.root}/{kind}/" + "/".join(parts) + ".json"

    # --- reading ------------------------------------------------------------------------
    def _read_json(self, path: str) -> Any | None:
        try:
            if self.local is not None:
                with open(path, "rb") as f:
                    data = f.read()
            else:
                with self.fs.open_input_stream(path) as f:
                    data = f.read()
        except FileNotFoundError:
            return None
        except Exception as e:  # OSError, or pyarrow's ArrowException from a cloud client
            if self.local is None and "not found" in str(e).lower():
                return None
            if not isinstance(e, OSError) and type(e).__module__ != "pyarrow.lib":
                raise
            raise _oserror(f"read {path}", e) from None
        try:
            obj = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            return {"__unreadable__": True}
        # every file of the store holds an object; anything else was damaged by hand
        return (
            obj
            if isinstance(obj, dict) and "__unreadable__" not in obj
            else {"__unreadable__": True}
        )

    def manifest(self, key: str) -> dict | None:
        """The manifest of a complete artifact, None if there is none. Cheap checks only
        (manifest readable, every file present with its size); a failure quarantines the
        artifact and reads as absent."""
        m = self._read_json(f"{self._obj(key)}/{MANIFEST}")
        if m is None:
            return None
        try:
            self._check_shallow(key, m)
        except CorruptArtifact as e:
            self.quarantine(key, e.why)
            return None
        return m

    def _check_shallow(self, key: str, m: dict):
        if m.get("__unreadable__") or m.get("key") != key:
            raise CorruptArtifact(key, "manifest unreadable or not for this key")
        if m.get("format") != FORMAT_VERSION:
            raise CorruptArtifact(key, f"store format {m.get('format')} != {FORMAT_VERSION}")
        if _recorded_key(m) != key:
            raise CorruptArtifact(
                key,
                "manifest does not hash to its key (its operator, params or inputs were edited)",
            )
        problem = _malformed(m)
        if problem:
            raise CorruptArtifact(key, f"manifest {problem}")
        files = m["files"]
        base = self._files(key, m)
        for rel, meta in files.items():
            size = self._size(f"{base}/{rel}")
            if size is None:
                raise CorruptArtifact(key, f"file {rel} is missing")
            if size != meta["size"]:
                raise CorruptArtifact(
                    key, f"file {rel} has {size} bytes, manifest says {meta['size']}"
                )
        unlisted = sorted(self._listing(base) - set(files))
        if unlisted:
            raise CorruptArtifact(key, f"file {unlisted[0]} is not in the manifest")

    def _listing(self, base: str) -> set[str]:
        """The files under an artifact's directory (its manifest aside)."""
        if self.local is not None:
            return {
                os.path.relpath(os.path.join(d, f), base)
                for d, _, names in os.walk(base)
                for f in names
            } - {MANIFEST}
        import pyarrow.fs as pafs

        infos = self.fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
        return {i.path[len(base) + 1 :] for i in infos if i.type == pafs.FileType.File} - {MANIFEST}

    def _size(self, path: str) -> int | None:
        if self.local is not None:
            try:
                st = os.stat(path)
            except FileNotFoundError:
                return None
            return st.st_size if os.path.isfile(path) else None
        import pyarrow.fs as pafs

        info = self.fs.get_file_info(path)
        return info.size if info.type == pafs.FileType.File else None

    def verify(self, key: str, m: dict, prefix: str = ""):
        """Check every file's checksum (of files under `prefix` only, if given)."""
        from .content_hash import file_hash, xxhash

        base = self._files(key, m)
        for rel, meta in m["files"].items():
            if not rel.startswith(prefix):
                continue
            if self.local is not None:
                got = file_hash(f"{base}/{rel}")
            else:
                with self.fs.open_input_stream(f"{base}/{rel}") as f:
                    got = xxhash.xxh3_128(f.read()).hexdigest()
            if got != meta["xxh3"]:
                raise CorruptArtifact(key, f"file {rel} does not match its checksum")

    def read_table(self, key: str, output: str):
        """The dataset `output` of artifact `key`, checksums verified."""
        import pyarrow as pa
        import pyarrow.parquet as pq
        import xxhash

        m = self.manifest(key)
        if m is None:
            raise CorruptArtifact(key, "artifact is missing or incomplete")
        parts = sorted(rel for rel in m["files"] if rel.startswith(output + "/"))
        tables = []
        for rel in parts:
            data = _arrow_bytes(self.fs, f"{self._files(key, m)}/{rel}")
            if xxhash.xxh3_128(memoryview(data)).hexdigest() != m["files"][rel]["xxh3"]:
                self.quarantine(key, f"file {rel} does not match its checksum")
                raise CorruptArtifact(key, f"file {rel} does not match its checksum")
            try:
                tables.append(pq.read_table(pa.BufferReader(data)))
            except Exception as e:  # pyarrow raises ArrowInvalid and others
                self.quarantine(key, f"file {rel} is not readable Parquet: {e}")
                raise CorruptArtifact(key, f"file {rel} is not readable Parquet") from None
        return pa.concat_tables(tables) if len(tables) != 1 else tables[0]

    def model_dir(self, key: str, output: str) -> Path:
        """A local directory holding the model output, checksums verified."""
        m = self.manifest(key)
        if m is None:
            raise CorruptArtifact(key, "artifact is missing or incomplete")
        try:
            self.verify(key, m, prefix=output + "/")
        except CorruptArtifact as e:
            self.quarantine(key, e.why)
            raise
        if self.local is not None:  # its file list was checked with the manifest
            return Path(self._obj(key)) / output
        cache = _local_cache()
        dest = cache / key / output
        if (dest / ".complete").exists():
            try:
                self._check_model_copy(key, m, output, dest, ignore={".complete"})
            except CorruptArtifact:  # a copy changed here: fetch it again
                shutil.rmtree(dest, ignore_errors=True)
        if not (dest / ".complete").exists():
            import pyarrow.fs as pafs

            tmp = cache / f"{key}.{uuid.uuid4().hex[:8]}"
            (tmp / output).mkdir(parents=True)
            pafs.copy_files(
                f"{self._files(key, m)}/{output}",
                str(tmp / output),
                source_filesystem=self.fs,
                destination_filesystem=pafs.LocalFileSystem(),
            )
            (tmp / output / ".complete").touch()
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(tmp / output, dest)
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)
        return dest

    def _check_model_copy(self, key: str, m: dict, output: str, path: Path, ignore=frozenset()):
        """A local copy of a model holds exactly the files its manifest names, with their
        sizes (a file added to it would reach every stage that reads it)."""
        want = {
            rel[len(output) + 1 :]: meta["size"]
            for rel, meta in m["files"].items()
            if rel.startswith(output + "/")
        }
        have = {}
        for root, _, files in os.walk(path):
            for f in files:
                rel = os.path.relpath(os.path.join(root, f), path).replace(os.sep, "/")
                if rel not in ignore:
                    have[rel] = os.path.getsize(os.path.join(root, f))
        if have != want:
            extra = sorted(set(have) - set(want))
            raise CorruptArtifact(
                key,
                f"file {extra[0]} is not in the manifest"
                if extra
                else "its files differ from the manifest",
            )

    def set_aside_input(self, key: str, path: Path, why: str):
        """An input that a stage changed: quarantined (local store) or its local copy dropped
        (object store), so that it is recomputed or fetched again whole."""
        if self.local is not None:
            self.quarantine(key, why)
        else:
            shutil.rmtree(path, ignore_errors=True)

    # --- writing ------------------------------------------------------------------------
    def begin(self, key: str) -> Staging:
        """A fresh local staging directory for the outputs of `key`."""
        self._obj(key)  # checks the key: a staging directory stays under tmp/
        from .leases import staging_space

        name = (
            f"{key}.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}-{staging_space()}"
        )
        if self.local is not None:
            path = self.local / "tmp" / name
        else:
            path = _local_cache() / "tmp" / name
        try:
            path.mkdir(parents=True)
            (path / STAGING_MARK).touch()
        except OSError as e:
            raise _oserror("create a staging directory", e) from None
        return Staging(key, path)

    def write_table(self, staging: Staging, output: str, table) -> dict:
        """Write a dataset output into staging; returns its manifest entry."""
        import pyarrow.parquet as pq

        from .content_hash import canonical_table, table_hash

        table = canonical_table(table)
        d = staging.output_dir(output)
        try:
            pq.write_table(table, d / "part-0.parquet", compression="zstd")
        except OSError as e:
            raise _oserror("write a dataset", e) from None
        return {
            "kind": "dataset",
            "content_hash": table_hash(table),
            "rows": table.num_rows,
            "schema": {f.name: str(f.type) for f in table.schema},
        }

    def seal_directory(self, staging: Staging, output: str) -> dict:
        """Hash a model/directory output that an operator wrote into staging."""
        from .content_hash import directory_hash, hash_directory

        files = hash_directory(staging.output_dir(output))
        if not files:
            raise StoreError(f"output {output!r} is an empty directory")
        return {"kind": "model", "content_hash": directory_hash(files), "files": len(files)}

    def publish(self, staging: Staging, manifest: dict) -> dict:
        """Write the manifest last, then move the whole artifact into place atomically. If
        another run published the same key meanwhile, keep theirs."""
        from .content_hash import file_hash

        try:
            staging.check()
            (staging.path / STAGING_MARK).unlink()
        except StoreError:
            self.discard(staging)
            raise
        files = {}
        for p in sorted(staging.path.rglob("*")):
            if p.is_file():
                files[p.relative_to(staging.path).as_posix()] = {
                    "size": p.stat().st_size,
                    "xxh3": file_hash(p),
                }
        manifest = {
            **manifest,
            "format": FORMAT_VERSION,
            "key": staging.key,
            "files": files,
            "created": time.time(),
        }
        if self.local is None:
            manifest["data"] = f"data-{uuid.uuid4().hex}"
        final = self._obj(staging.key)
        try:
            (staging.path / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
            if self.local is not None:
                Path(final).parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.rename(staging.path, final)
                except OSError as e:
                    if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                        raise
                    if self.manifest(staging.key) is not None:
                        shutil.rmtree(staging.path, ignore_errors=True)
                        return self.manifest(staging.key)
                    shutil.rmtree(final, ignore_errors=True)
                    os.rename(staging.path, final)
                _read_only(Path(final))
            else:
                self._publish_remote(staging, final, files)
        except OSError as e:
            self.discard(staging)
            raise _oserror("publish an artifact", e) from None
        return manifest

    def _publish_remote(self, staging: Staging, final: str, files: dict):
        # Object stores have no directory rename, but a single object appears whole or not at
        # all. The files go under a directory of this publish's own (data-<nonce>), the
        # manifest naming it goes last: the artifact exists only once it is whole, and two
        # runs publishing the same key at once each write a complete set of files; whichever
        # manifest lands last names its own, so the artifact is valid either way.
        if self.manifest(staging.key) is not None:
            self.discard(staging)
            return
        data = json.loads((staging.path / MANIFEST).read_text())["data"]
        for rel in files:
            with (
                open(staging.path / rel, "rb") as src,
                self.fs.open_output_stream(f"{final}/{data}/{rel}") as dst,
            ):
                shutil.copyfileobj(src, dst, 1 << 22)
        with (
            open(staging.path / MANIFEST, "rb") as src,
            self.fs.open_output_stream(f"{final}/{MANIFEST}") as dst,
        ):
            dst.write(src.read())
        self.discard(staging)

    def discard(self, staging: Staging):
        shutil.rmtree(staging.path, ignore_errors=True)

    def quarantine(self, key: str, why: str):
        """Move a corrupt artifact aside (so it is recomputed) and say so."""
        import sys

        print(
            f"warning: artifact {key[:12]} is corrupt ({why}); it will be recomputed",
            file=sys.stderr,
        )
        src = self._obj(key)
        dest = f"{self.root}/quarantine/{key}.{int(time.time())}.{uuid.uuid4().hex[:6]}"
        try:
            self.fs.create_dir(f"{self.root}/quarantine", recursive=True)
            self.fs.move(src, dest)
        except Exception:  # object stores cannot move a directory: drop it instead
            self.fs.delete_dir(src)

    # --- leases: who computes a key, so that two runs sharing a store do it once ---------
    def _lease_path(self, key: str) -> str:
        self._obj(key)  # checks the key
        return f"{self.root}/leases/{key}.json"

    def _lease_files(self):
        """The store's conditional writes (None: it has none; warned once)."""
        if not hasattr(self, "_conditional"):
            from .leases import conditional_files

            self._conditional = conditional_files(self)
            if self._conditional is None:
                import sys

                print(
                    f"warning: store {self.uri} cannot write a file only if it is absent; "
                    "two runs sharing it may both compute a stage",
                    file=sys.stderr,
                )
        return self._conditional

    def _lease_record(self, owner: str, ttl: float) -> bytes:
        from .leases import dump, holder

        return dump({"owner": owner, **holder(), "expires": time.time() + ttl})

    def acquire_lease(self, key: str, owner: str, ttl: float) -> dict | None:
        """Take the lease on computing `key` for `ttl` seconds. None if taken (or renewed),
        else the live lease of whoever holds it. A lease that expired, or whose holder is a
        dead process of this PID space, is taken over: a crash never leaves a lock behind.
        Taking is create-if-absent, taking over a compare-and-swap: of two runs, one wins."""
        from .leases import parse

        path = self._lease_path(key)
        mine = self._lease_record(owner, ttl)
        files = self._lease_files()
        if files is None:
            return self._acquire_unconditional(path, owner, mine)
        try:
            for _ in range(3):
                if files.create(path, mine):
                    return None
                data, version = files.read(path)
                held = parse(data)
                if held is None:
                    continue  # released meanwhile
                if held.get("owner") != owner and not self._lease_dead(held):
                    return held
                if files.swap(path, version, mine):
                    return None
            return parse(files.read(path)[0]) or {"owner": "?"}  # contended: wait a round
        except OSError as e:
            raise _oserror("take a lease", e) from None

    def _acquire_unconditional(self, path: str, owner: str, mine: bytes) -> dict | None:
        """Write, let a concurrent taker's write land, read back: narrows the race, no more."""
        held = self._read_json(path)
        if (
            held
            and not held.get("__unreadable__")
            and held.get("owner") != owner
            and not self._lease_dead(held)
        ):
            return held
        self._write_json(path, json.loads(mine), "take a lease")
        time.sleep(_LEASE_SETTLE)
        now = self._read_json(path)
        if now and now.get("owner") == owner:
            return None
        return now or held

    def _lease_dead(self, lease: dict) -> bool:
        from .leases import pid_alive, same_pid_space

        expires = lease.get("expires")
        if not isinstance(expires, (int, float)) or expires < time.time():
            return True
        if same_pid_space(lease) and isinstance(lease.get("pid"), int):
            return not pid_alive(lease["pid"])
        return False

    def renew_lease(self, key: str, owner: str, ttl: float) -> bool:
        """Push the lease's expiry on; False if someone else holds it now."""
        from .leases import parse

        path = self._lease_path(key)
        mine = self._lease_record(owner, ttl)
        files = self._lease_files()
        if files is None:
            held = self._read_json(path)
            if held and held.get("owner") not in (None, owner) and not self._lease_dead(held):
                return False
            self._write_json(path, json.loads(mine), "renew a lease")
            return True
        try:
            data, version = files.read(path)
            held = parse(data)
            if held is None:
                return files.create(path, mine)
            if held.get("owner") != owner and not self._lease_dead(held):
                return False
            return files.swap(path, version, mine)
        except OSError as e:
            raise _oserror("renew a lease", e) from None

    def release_lease(self, key: str, owner: str):
        from .leases import parse

        path = self._lease_path(key)
        files = self._lease_files()
        try:
            if files is None:
                held = self._read_json(path)
                if held and held.get("owner") == owner:
                    self.fs.delete_file(path)
                return
            data, version = files.read(path)
            if (parse(data) or {}).get("owner") == owner:
                files.swap(path, version, None)
        except OSError:
            pass  # it expires on its own

    # --- partial results of a running stage, kept across a crash -------------------------
    def shards(self, key: str, name: str) -> ShardLog:
        return ShardLog(self, self._partial(key), name)

    def drop_partial(self, key: str):
        """Forget the shards of `key` (its artifact is published)."""
        path = self._partial(key)
        if self.local is not None:
            shutil.rmtree(path, ignore_errors=True)
            return
        try:
            self.fs.delete_dir(path)
        except OSError:
            pass

    def partial_keys(self) -> list[str]:
        """Keys with committed shards or checkpoints (of runs that stopped)."""
        import pyarrow.fs as pafs

        sel = pafs.FileSelector(f"{self.root}/partial", recursive=False, allow_not_found=True)
        out = []
        for prefix in self.fs.get_file_info(sel):
            sub = pafs.FileSelector(prefix.path, recursive=False, allow_not_found=True)
            out += [i.base_name for i in self.fs.get_file_info(sub)]
        return out

    # --- refs: what each stage of a spec last resolved to (for stale causes) ------------
    def read_ref(self, spec: str, node: str) -> dict | None:
        """What `node` of `spec` last resolved to; None if never, or if the ref is damaged
        (then a warning says so: the stage reads as new)."""
        ref = self._read_json(self._named("refs", spec, node))
        if ref is None:
            return None
        if ref.get("__unreadable__") or not all(
            isinstance(ref.get(k, {}), dict) for k in ("params", "inputs", "outputs")
        ):
            import sys

            print(
                f"warning: the ref of {spec}/{node} in the store is damaged; ignoring it",
                file=sys.stderr,
            )
            return None
        return ref

    def write_ref(self, spec: str, node: str, ref: dict):
        self._write_json(self._named("refs", spec, node), ref, "write a ref")

    def write_run(self, spec: str, record: dict):
        """Append a run record under runs/<spec>/ (history for `bench/` and post-mortems)."""
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f".{os.getpid()}"
        self._write_json(self._named("runs", spec, stamp), record, "write a run record")

    def _write_json(self, path: str, obj: dict, action: str):
        """Whole or not at all: a temporary file renamed into place (locally)."""
        data = json.dumps(obj, indent=1, sort_keys=True).encode()
        try:
            if self.local is not None:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                tmp = f"{path}.{os.getpid()}.tmp"
                with open(tmp, "wb") as f:
                    f.write(data)
                os.replace(tmp, path)
            else:
                with self.fs.open_output_stream(path) as f:
                    f.write(data)
        except OSError as e:
            raise _oserror(action, e) from None

    def runs(self, spec: str) -> list[dict]:
        """Run records of a spec, oldest first."""
        if self.local is None:
            return []
        d = Path(self._named("runs", spec, "x")).parent
        return [json.loads(p.read_text()) for p in sorted(d.glob("*.json"))] if d.exists() else []

    # --- housekeeping -------------------------------------------------------------------
    def artifacts(self) -> Iterator[dict]:
        """Manifests of every complete artifact; a damaged one is quarantined (and said)."""
        import pyarrow.fs as pafs

        selector = pafs.FileSelector(f"{self.root}/objects", recursive=False, allow_not_found=True)
        for prefix in self.fs.get_file_info(selector):
            sub = pafs.FileSelector(prefix.path, recursive=False, allow_not_found=True)
            for info in self.fs.get_file_info(sub):
                key = info.base_name
                if len(key) < 8 or not all(c in "0123456789abcdef" for c in key):
                    continue
                m = self.manifest(key)
                if m is not None:
                    yield m

    def delete(self, key: str) -> int:
        m = self._read_json(f"{self._obj(key)}/{MANIFEST}") or {}
        files = m.get("files") if isinstance(m.get("files"), dict) else {}
        size = sum(f.get("size", 0) for f in files.values() if isinstance(f, dict))
        self.fs.delete_dir(self._obj(key))
        return size

    def clean_tmp(self) -> int:
        """Remove staging directories of runs that died (this host and PID space, pid
        gone)."""
        from .leases import pid_alive, same_pid_space

        if self.local is None:
            return 0
        removed = 0
        for d in (self.local / "tmp").glob("*"):
            # <key>.<host>.<pid>.<random>-<pid space>
            parts = d.name.split(".")
            pid = int(parts[-2]) if len(parts) >= 4 and parts[-2].isdigit() else None
            space = parts[-1].partition("-")[2]
            mine = same_pid_space({"host": ".".join(parts[1:-2]), "pid_space": space}, hashed=True)
            if mine and pid and not pid_alive(pid):
                shutil.rmtree(d, ignore_errors=True)
                removed += 1
        return removed
