"""The artifact store: content-checked artifacts under a root, on a backend (`backends.py`:
a local directory or an object store). Leases (`leases.py`), the shard logs of running stages
(`shards.py`) and refs (`refs.py`) are kept beside the artifacts, each by its own module.

    <root>/objects/<key[:2]>/<key>/manifest.json     written last; an artifact without it
    <root>/objects/<key[:2]>/<key>/<output>/...      does not exist (on an object store the
                                                     files sit under data-<nonce>/, named by
                                                     the manifest: see backends.py)
    <root>/tmp/<key>.<host>.<pid>.<rand>/            staging: renamed into objects/ whole
    <root>/refs/<spec>/<node>.json                   what each stage last resolved to
    <root>/quarantine/                               corrupt artifacts, kept for a look
    <root>/leases/<key>.json                         who is computing a key, until when
    <root>/partial/<key>/                            shards a running stage has committed

Datasets are Parquet files, models are directories of files (safetensors, config,
tokenizer). Every file's size and xxh3 are in the manifest and checked when read. No pickle.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .backends import MANIFEST, local_cache, open_backend, oserror, timeout
from .errors import CorruptArtifact, InputError, StoreError
from .fingerprint import FORMAT_VERSION
from .leases import StoreLeases, dead_holder
from .refs import Refs
from .shards import ShardLog

__all__ = ["MANIFEST", "Staging", "Store", "timeout"]

STAGING_MARK = ".staging"  # made by `begin`; its absence at publish means the staging was lost


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


def _recorded_key(m: dict) -> str | None:
    """The key that the record a manifest holds hashes to (None if it holds none)."""
    from .fingerprint import StageKey

    try:
        return StageKey.from_json(m.get("record")).digest
    except (ValueError, TypeError, AttributeError):
        return None


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


class Store:
    def __init__(self, uri: str | os.PathLike):
        self.uri = str(uri)
        self.backend = open_backend(self.uri)
        self.root, self.local = self.backend.root, self.backend.local
        self.leases = StoreLeases(self)
        self.refs = Refs(self)

    @property
    def fs(self):
        """The pyarrow filesystem of the store."""
        return self.backend.fs

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
        data = self.backend.read(path)
        if data is None:
            return None
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
            size = self.backend.size(f"{base}/{rel}")
            if size is None:
                raise CorruptArtifact(key, f"file {rel} is missing")
            if size != meta["size"]:
                raise CorruptArtifact(
                    key, f"file {rel} has {size} bytes, manifest says {meta['size']}"
                )
        unlisted = sorted(self.backend.files(base) - {MANIFEST} - set(files))
        if unlisted:
            raise CorruptArtifact(key, f"file {unlisted[0]} is not in the manifest")

    def verify(self, key: str, m: dict, prefix: str = ""):
        """Check every file's checksum (of files under `prefix` only, if given)."""
        base = self._files(key, m)
        for rel, meta in m["files"].items():
            if not rel.startswith(prefix):
                continue
            if self.backend.xxh3(f"{base}/{rel}") != meta["xxh3"]:
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
            data = self.backend.read_buffer(f"{self._files(key, m)}/{rel}")
            if xxhash.xxh3_128(memoryview(data)).hexdigest() != m["files"][rel]["xxh3"]:
                self.quarantine(key, f"file {rel} does not match its checksum")
                raise CorruptArtifact(key, f"file {rel} does not match its checksum")
            try:
                # ParquetFile, not read_table: the latter imports pyarrow.dataset and
                # pandas (about 0.5 s), which a report of a few small tables would pay
                tables.append(pq.ParquetFile(pa.BufferReader(data)).read())
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
        cache = local_cache()
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
        path = self.backend.staging_root() / name
        try:
            path.mkdir(parents=True)
            (path / STAGING_MARK).touch()
        except OSError as e:
            raise oserror("create a staging directory", e) from None
        return Staging(key, path)

    @contextmanager
    def staging(self, key: str) -> Iterator[Staging]:
        """A staging directory for the outputs of `key`, gone when the block ends, whether
        it published (moved into place) or failed. An operator's error raised while the
        staging directory itself vanished (the store deleted or cleaned under the run) is
        the store's failure, and says so."""
        staging = self.begin(key)
        try:
            yield staging
        except Exception as e:
            if not isinstance(e, (StoreError, InputError, CorruptArtifact)):
                try:
                    staging.check()
                except StoreError as lost:
                    raise lost from e
            raise
        finally:
            self.discard(staging)

    def write_table(self, staging: Staging, output: str, table) -> dict:
        """Write a dataset output into staging; returns its manifest entry."""
        import pyarrow.parquet as pq

        from .content_hash import canonical_table, table_hash

        table = canonical_table(table)
        d = staging.output_dir(output)
        try:
            pq.write_table(table, d / "part-0.parquet", compression="zstd")
        except OSError as e:
            raise oserror("write a dataset", e) from None
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
        try:
            (staging.path / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
            landed = self.backend.publish(
                staging.path,
                self._obj(staging.key),
                files,
                manifest.get("data"),
                lambda: self.manifest(staging.key) is not None,
            )
        except OSError as e:
            self.discard(staging)
            raise oserror("publish an artifact", e) from None
        self.discard(staging)
        if not landed and self.local is not None:
            return self.manifest(staging.key) or manifest  # another run's, kept
        return manifest

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

    # --- leases: who computes a key (leases.py) ------------------------------------------
    def acquire_lease(self, key: str, owner: str, ttl: float) -> dict | None:
        return self.leases.acquire(key, owner, ttl)

    def renew_lease(self, key: str, owner: str, ttl: float) -> bool:
        return self.leases.renew(key, owner, ttl)

    def release_lease(self, key: str, owner: str):
        self.leases.release(key, owner)

    # --- partial results of a running stage, kept across a crash -------------------------
    def shards(self, key: str, name: str) -> ShardLog:
        return ShardLog(self.backend, self._partial(key), name)

    def drop_partial(self, key: str):
        """Forget the shards of `key` (its artifact is published)."""
        self.backend.delete(self._partial(key))

    def partial_keys(self) -> list[str]:
        """Keys with committed shards or checkpoints (of runs that stopped)."""
        partial = f"{self.root}/partial"
        return [
            key
            for prefix in self.backend.children(partial)
            for key in self.backend.children(f"{partial}/{prefix}")
        ]

    # --- refs (refs.py) and run records --------------------------------------------------
    def read_ref(self, spec: str, node: str) -> dict | None:
        return self.refs.read(spec, node)

    def write_ref(self, spec: str, node: str, ref: dict):
        self.refs.write(spec, node, ref)

    def write_run(self, spec: str, record: dict):
        """Append a run record under runs/<spec>/ (history for `bench/` and post-mortems)."""
        now = time.time()  # microseconds: two runs of one process in a second keep both
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
        stamp += f".{int(now * 1e6) % 1_000_000:06d}.{os.getpid()}"
        self._write_json(self._named("runs", spec, stamp), record, "write a run record")

    def _write_json(self, path: str, obj: dict, action: str):
        self._write(path, json.dumps(obj, indent=1, sort_keys=True).encode(), action)

    def _write(self, path: str, data: bytes, action: str):
        """Whole or not at all."""
        try:
            self.backend.write(path, data)
        except OSError as e:
            raise oserror(action, e) from None

    def runs(self, spec: str) -> list[dict]:
        """Run records of a spec, oldest first."""
        if self.local is None:
            return []
        d = Path(self._named("runs", spec, "x")).parent
        return [json.loads(p.read_text()) for p in sorted(d.glob("*.json"))] if d.exists() else []

    # --- housekeeping -------------------------------------------------------------------
    def artifacts(self) -> Iterator[dict]:
        """Manifests of every complete artifact; a damaged one is quarantined (and said)."""
        objects = f"{self.root}/objects"
        for prefix in self.backend.children(objects):
            for key in self.backend.children(f"{objects}/{prefix}"):
                if len(key) < 8 or not all(c in "0123456789abcdef" for c in key):
                    continue
                m = self.manifest(key)
                if m is not None:
                    yield m

    def delete(self, key: str) -> int:
        m = self._read_json(f"{self._obj(key)}/{MANIFEST}") or {}
        files = m.get("files")
        if not isinstance(files, dict):
            files = {}
        size = sum(f.get("size", 0) for f in files.values() if isinstance(f, dict))
        self.fs.delete_dir(self._obj(key))
        return size

    def clean_tmp(self) -> int:
        """Remove staging directories of runs that died (this host and PID space, pid
        gone)."""
        if self.local is None:
            return 0
        removed = 0
        for d in (self.local / "tmp").glob("*"):
            # <key>.<host>.<pid>.<random>-<pid space>
            parts = d.name.split(".")
            pid = int(parts[-2]) if len(parts) >= 4 and parts[-2].isdigit() else None
            space = parts[-1].partition("-")[2]
            made_by = {"host": ".".join(parts[1:-2]), "pid": pid, "pid_space": space}
            if pid and dead_holder(made_by, hashed=True):
                shutil.rmtree(d, ignore_errors=True)
                removed += 1
        return removed
