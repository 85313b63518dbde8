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
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlparse

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
                tmp = f"{path}.{os.getpid()}.{uuid.uuid4().hex[:6]}.tmp"
                with open(tmp, "wb") as f:
                    f.write(data)
                os.replace(tmp, path)
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

    def _put(self, path: str, data: bytes, **condition: object) -> bool:
        """Write an object if the condition (`IfNoneMatch` or `IfMatch`) holds."""
        bucket, key = self._split(path)
        return (
            self._call(
                "take a lease",
                self.client.put_object,
                Bucket=bucket,
                Key=key,
                Body=data,
                **condition,
            )
            is not False
        )

    def create(self, path: str, data: bytes) -> bool:
        return self._put(path, data, IfNoneMatch="*")

    def read(self, path: str) -> tuple[bytes | None, object]:
        """(the bytes, their etag), (None, None) if absent."""
        bucket, key = self._split(path)
        got = self._call("read a lease", self.client.get_object, Bucket=bucket, Key=key)
        if not got:
            return None, None
        return got["Body"].read(), got["ETag"]

    def swap(self, path: str, version: object, data: bytes | None) -> bool:
        bucket, key = self._split(path)
        if data is None:
            return (
                self._call(
                    "release a lease",
                    self.client.delete_object,
                    Bucket=bucket,
                    Key=key,
                    IfMatch=version,
                )
                is not False
            )
        return self._put(path, data, IfMatch=version)

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
        from .store import timeout

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
