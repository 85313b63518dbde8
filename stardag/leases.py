"""What a lease needs from a store: write a small file only if it is absent, and replace or
delete it only if it is still the version one read (compare-and-swap). Local stores do the
first with O_EXCL and the second under a lock file; S3-compatible stores with conditional
requests (`If-None-Match: *`, `If-Match: <etag>`). And who holds a lease: a process id means
something only to a process on the same host, in the same PID namespace, since the same boot.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import socket
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from .backends import oserror, write_atomic
from .errors import StoreError


@functools.lru_cache(maxsize=1)
def _pid_space() -> str:
    """Which PID space this process lives in: the boot and the PID namespace. Two runs in
    two containers on one host (host networking: one host name) see each other's PIDs as
    unrelated numbers."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
        ns = os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""
    return f"{boot}/{ns}"


def staging_space() -> str:
    """The PID space, short enough for a directory name."""
    import hashlib

    return hashlib.sha256(_pid_space().encode()).hexdigest()[:12] if _pid_space() else ""


def holder() -> dict:
    """This process, as a lease (or a staging directory) records it."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "pid_space": _pid_space()}


def same_pid_space(record: dict, hashed: bool = False) -> bool:
    """Whether `record`'s pid can be looked up here. A record without its PID space (from an
    older stardag, or another kind of host) cannot be judged by its pid."""
    here = staging_space() if hashed else _pid_space()
    return (
        record.get("host") == socket.gethostname()
        and bool(here)
        and record.get("pid_space") == here
    )


def pid_alive(pid: int) -> bool:
    """Whether process `pid` (of this PID space) runs; a zombie (killed, not yet reaped by
    its parent) does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # /proc may be another PID namespace's (a container without its own /proc)
        if os.readlink("/proc/self") == str(os.getpid()):
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        pass
    return True


class LocalFiles:
    """Files of a local (or NFS-mounted) store."""

    def __init__(self, lock: str):
        self.lock = lock  # one lock file for every compare-and-swap: each is a few µs

    def create(self, path: str, data: bytes) -> bool:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return True

    def read(self, path: str) -> tuple[bytes | None, object]:
        """(the bytes, their version for `swap`: the bytes themselves), (None, None) if absent."""
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None, None
        return data, data

    def swap(self, path: str, version: object, data: bytes | None) -> bool:
        """Replace (or, with data None, delete) the file if it still reads as `version`."""
        fd = os.open(self.lock, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if self.read(path)[0] != version:
                return False
            if data is None:
                os.unlink(path)
            else:
                write_atomic(path, data)
            return True
        finally:
            os.close(fd)


class S3Objects:
    """Objects of an S3-compatible store, through boto3's conditional requests."""

    def __init__(self, uri: str, timeout: float):
        import boto3
        from botocore.config import Config

        u = urlparse(uri)
        q = {k: v[-1] for k, v in parse_qs(u.query).items()}
        endpoint = q.get("endpoint_override")
        if endpoint and "://" not in endpoint:
            endpoint = f"{q.get('scheme', 'https')}://{endpoint}"
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=q.get("region") or None,
            aws_access_key_id=q.get("access_key"),
            aws_secret_access_key=q.get("secret_key"),
            config=Config(
                connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 2}
            ),
        )

    @staticmethod
    def _split(path: str) -> tuple[str, str]:
        bucket, _, key = path.partition("/")
        return bucket, key

    def _call(self, action: str, fn, **kw):
        """fn(**kw); False if a condition failed; StoreError if the request failed."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(**kw)
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status in (409, 412) or code in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            if code == "NoSuchKey" or (code == "404" and fn != self.client.put_object):
                return None
            raise StoreError(
                f"store: cannot {action}: {code or status}: "
                f"{e.response.get('Error', {}).get('Message', '')}"
            ) from None
        except BotoCoreError as e:
            raise StoreError(f"store: cannot {action}: {e}") from None

    def _conditional(self, action: str, request, path: str, **kw: object) -> bool:
        """A request with a condition (`IfNoneMatch`, `IfMatch`); False if it did not hold."""
        bucket, key = self._split(path)
        return self._call(action, request, Bucket=bucket, Key=key, **kw) is not False

    def create(self, path: str, data: bytes) -> bool:
        return self._conditional(
            "take a lease", self.client.put_object, path, Body=data, IfNoneMatch="*"
        )

    def read(self, path: str) -> tuple[bytes | None, object]:
        """(the bytes, their etag), (None, None) if absent."""
        bucket, key = self._split(path)
        got = self._call("read a lease", self.client.get_object, Bucket=bucket, Key=key)
        if not got:
            return None, None
        return got["Body"].read(), got["ETag"]

    def swap(self, path: str, version: object, data: bytes | None) -> bool:
        if data is None:
            return self._conditional(
                "release a lease", self.client.delete_object, path, IfMatch=version
            )
        return self._conditional(
            "take a lease", self.client.put_object, path, Body=data, IfMatch=version
        )

    def honours_conditions(self, probe: str) -> bool:
        """Whether the server refuses a second create of one object (some S3-compatible
        servers ignore `If-None-Match` and would let two runs both take a lease)."""
        try:
            first = self.create(probe, b"{}")
            second = self.create(probe, b"{}")
        except StoreError:
            return False
        finally:
            bucket, key = self._split(probe)
            self._call("remove a probe", self.client.delete_object, Bucket=bucket, Key=key)
        return first and not second


def conditional_files(store) -> LocalFiles | S3Objects | None:
    """The store's conditional writes, or None where it has none."""
    if store.local is not None:
        return LocalFiles(f"{store.root}/leases/swap.lock")
    if not store.uri.startswith("s3://"):
        return None
    try:
        from .backends import timeout

        objects = S3Objects(store.uri, timeout())
    except ImportError:  # boto3 is the `s3` extra
        return None
    probe = f"{store.root}/leases/.probe-{uuid.uuid4().hex}"
    return objects if objects.honours_conditions(probe) else None


def parse(data: bytes | None) -> dict | None:
    """A lease's JSON; a damaged one reads as {"__unreadable__": True} (and can be taken)."""
    if data is None:
        return None
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        obj = None
    return obj if isinstance(obj, dict) else {"__unreadable__": True}


def dump(obj: dict) -> bytes:
    return json.dumps(obj, indent=1, sort_keys=True).encode()


def dead_holder(record: dict, hashed: bool = False) -> bool:
    """Whether the process a lease or a staging directory names is known to be gone: one of
    this PID space whose pid no longer runs."""
    pid = record.get("pid")
    return same_pid_space(record, hashed) and isinstance(pid, int) and not pid_alive(pid)


_SETTLE = 0.3  # seconds a lease taker waits before reading back whose lease it is


class StoreLeases:
    """Who computes a key, so that two runs sharing a store do it once:
    `<root>/leases/<key>.json` names the owner, its process and when the lease expires."""

    def __init__(self, store):
        self.store = store

    def _path(self, key: str) -> str:
        self.store._obj(key)  # checks the key
        return f"{self.store.root}/leases/{key}.json"

    def _files(self) -> LocalFiles | S3Objects | None:
        """The store's conditional writes (None: it has none; warned once)."""
        if not hasattr(self, "_conditional"):
            self._conditional = conditional_files(self.store)
            if self._conditional is None:
                import sys

                print(
                    f"warning: store {self.store.uri} cannot write a file only if it is "
                    "absent; two runs sharing it may both compute a stage",
                    file=sys.stderr,
                )
        return self._conditional

    @staticmethod
    def _record(owner: str, ttl: float) -> bytes:
        return dump({"owner": owner, **holder(), "expires": time.time() + ttl})

    @staticmethod
    def dead(lease: dict) -> bool:
        """Expired, or held by a process of this PID space that is gone."""
        expires = lease.get("expires")
        if not isinstance(expires, (int, float)) or expires < time.time():
            return True
        return dead_holder(lease)

    def acquire(self, key: str, owner: str, ttl: float) -> dict | None:
        """Take the lease on computing `key` for `ttl` seconds. None if taken (or renewed),
        else the live lease of whoever holds it. A lease that expired, or whose holder is a
        dead process of this PID space, is taken over: a crash never leaves a lock behind.
        Taking is create-if-absent, taking over a compare-and-swap: of two runs, one wins."""
        path = self._path(key)
        mine = self._record(owner, ttl)
        files = self._files()
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
                if held.get("owner") != owner and not self.dead(held):
                    return held
                if files.swap(path, version, mine):
                    return None
            return parse(files.read(path)[0]) or {"owner": "?"}  # contended: wait a round
        except OSError as e:
            raise oserror("take a lease", e) from None

    def _acquire_unconditional(self, path: str, owner: str, mine: bytes) -> dict | None:
        """Write, let a concurrent taker's write land, read back: narrows the race, no more."""
        held = self.store._read_json(path)
        if (
            held
            and not held.get("__unreadable__")
            and held.get("owner") != owner
            and not self.dead(held)
        ):
            return held
        self.store._write(path, mine, "take a lease")
        time.sleep(_SETTLE)
        now = self.store._read_json(path)
        if now and now.get("owner") == owner:
            return None
        return now or held

    def renew(self, key: str, owner: str, ttl: float) -> bool:
        """Push the lease's expiry on; False if someone else holds it now."""
        path = self._path(key)
        mine = self._record(owner, ttl)
        files = self._files()
        if files is None:
            held = self.store._read_json(path)
            if held and held.get("owner") not in (None, owner) and not self.dead(held):
                return False
            self.store._write(path, mine, "renew a lease")
            return True
        try:
            data, version = files.read(path)
            held = parse(data)
            if held is None:
                return files.create(path, mine)
            if held.get("owner") != owner and not self.dead(held):
                return False
            return files.swap(path, version, mine)
        except OSError as e:
            raise oserror("renew a lease", e) from None

    def release(self, key: str, owner: str):
        path = self._path(key)
        files = self._files()
        try:
            if files is None:
                held = self.store._read_json(path)
                if held and held.get("owner") == owner:
                    self.store.fs.delete_file(path)
                return
            data, version = files.read(path)
            if (parse(data) or {}).get("owner") == owner:
                files.swap(path, version, None)
        except OSError:
            pass  # it expires on its own
