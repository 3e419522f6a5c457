"""Crash-safe file writes, backups of live configs, and the apply lock.

Whatever happens (even ``kill -9``), a file written with ``atomic_write`` is
either its old or its new content, never a mix. Temp files are hidden
(``.<name>.lbctl-tmp``) so neither HAProxy's ``-f <dir>`` nor nginx's
``include dir/*`` picks them up; backups belong outside every config dir.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from lbctl.errors import ApplyError, ConfigError, LockedError

TEMP_SUFFIX = ".lbctl-tmp"
_DEFAULT_MODE = 0o644
_LOCK_POLL = 0.05
LOCK_PROGRESS = 5.0  # seconds between "still waiting" lines
log = logging.getLogger("lbctl")


def temp_path(path: str | os.PathLike[str]) -> Path:
    """The hidden temp name ``atomic_write`` uses next to ``path``."""
    p = Path(path)
    return p.with_name(f".{p.name}{TEMP_SUFFIX}")


def atomic_write(path: str | os.PathLike[str], data: bytes | str, mode: int | None = None,
                 durable: bool = True) -> Path:
    """Replace ``path`` with ``data`` atomically: same-dir temp, fsync, rename, fsync dir
    (``durable=False``: no fsync; a reader still sees the old or the new file, but a
    power cut may lose the write, or leave the file empty).

    A symlink is followed (its target is replaced). The mode is ``mode``, else
    the existing file's mode, else 0644; as root the existing owner is kept.
    Returns the path written.

    :raises ApplyError: the file could not be written; ``path`` is unchanged.
    """
    target = Path(os.path.realpath(path))
    raw = data.encode() if isinstance(data, str) else bytes(data)
    try:
        old = target.stat()
    except FileNotFoundError:
        old = None
    except OSError as e:
        raise ApplyError(f"cannot write {target}: {e.strerror}") from e
    perm = mode if mode is not None else (old.st_mode & 0o7777 if old else _DEFAULT_MODE)
    tmp = temp_path(target)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(raw)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, perm)
            if old is not None and os.geteuid() == 0:
                os.fchown(fd, old.st_uid, old.st_gid)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise ApplyError(f"cannot write {target}: {e.strerror or e}") from e
    # The new file is live from here on; the dir fsync only makes the rename durable
    # (some filesystems refuse it), so a failure must not be reported as "unchanged".
    if durable:
        with contextlib.suppress(OSError):
            fsync_dir(target.parent)
    return target


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """fsync a directory so a rename or unlink in it survives a power cut."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def clean_stale_temps(directory: str | os.PathLike[str]) -> list[Path]:
    """Remove temp files an interrupted ``atomic_write`` left in ``directory``; return them."""
    removed = []
    for p in sorted(Path(directory).glob(f".*{TEMP_SUFFIX}")):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            removed.append(p)
    return removed


def size(path: str | os.PathLike[str] | None) -> int:
    """A file's size, 0 if there is none: where to start reading a log's new lines."""
    try:
        return os.stat(path).st_size if path else 0
    except OSError:
        return 0


def read_from(path: str | os.PathLike[str], offset: int) -> str:
    """What a log gained after ``offset`` (all of it if it shrank, i.e. was rotated); "" if unreadable."""
    try:
        with open(path, "rb") as f:
            if offset <= os.fstat(f.fileno()).st_size:
                f.seek(offset)
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def sha256_file(path: str | os.PathLike[str]) -> str | None:
    """Hex SHA-256 of a file's content, or None if it does not exist."""
    import hashlib  # here, and json below: lbctl render -o needs neither (docs/performance.md)

    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 16), b""):
                h.update(chunk)
    except FileNotFoundError:
        return None
    return h.hexdigest()


def stat_key(st: os.stat_result) -> tuple[int, int, int]:
    """Inode, size and mtime (ns): what an atomic replace or an edit of a file changes."""
    return st.st_ino, st.st_size, st.st_mtime_ns


def hard_link(source: str | os.PathLike[str], link: Path) -> bool:
    """Link ``link`` to ``source`` durably; False if it cannot be (another filesystem)."""
    try:
        os.link(source, link)
    except OSError:
        return False
    with contextlib.suppress(OSError):
        fsync_dir(link.parent)
    return True


@dataclass(frozen=True)
class Backup:
    """One saved copy of a live file."""

    id: str  # e.g. 20261127T141530.123456Z-1a2b3c4d; sorts by time
    path: Path  # the copy
    original: Path  # the live file it was taken from
    sha256: str
    created: datetime

    def read_bytes(self) -> bytes:
        """The saved content, checked against the recorded hash.

        :raises ApplyError: the copy is missing or does not match its hash.
        """
        import hashlib

        try:
            data = self.path.read_bytes()
        except OSError as e:
            raise ApplyError(f"cannot read backup {self.id}: {e.strerror}") from e
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise ApplyError(f"backup {self.id} is corrupt: {self.path} does not match its sha256")
        return data


class BackupStore:
    """Timestamped copies of live files in ``directory``, the newest ``keep`` per original.

    Each copy ``<id>`` has a sidecar ``<id>.json`` recording the original path,
    hash and time; the sidecar is written last, so a copy without one is ignored.
    """

    def __init__(self, directory: str | os.PathLike[str], keep: int = 10) -> None:
        if keep < 1:
            raise ConfigError(f"backup keep must be at least 1, got {keep}")
        self.directory = Path(directory)
        self.keep = keep

    def save(self, live_path: str | os.PathLike[str], known: tuple[tuple, str] | None = None) -> Backup:
        """Copy ``live_path`` into the store (skipped if it equals the newest copy) and prune.

        ``known``: (``stat_key`` of the file, its text) as the caller last read it.  While
        the file is still that one, the backup is a hard link to it (no copy, no fsync of
        megabytes): lbctl replaces the file by renaming a new one over it (``atomic_write``),
        so the linked inode keeps this content.  Else, or across filesystems, a copy.

        :raises ApplyError: ``live_path`` cannot be read or the copy cannot be written.
        """
        original = Path(os.path.abspath(live_path))
        try:
            real = os.path.realpath(original)
            same = known is not None and stat_key(os.stat(real)) == known[0]
            data = None if same else original.read_bytes()
        except OSError as e:
            raise ApplyError(f"cannot back up {original}: {e.strerror}") from e
        import hashlib
        import json

        from lbctl import digests

        digest = digests.digest(known[1]) if data is None else hashlib.sha256(data).hexdigest()
        newest = self.latest(original)
        if newest is not None and newest.sha256 == digest:
            return newest
        now = datetime.now(timezone.utc)
        backup_id = f"{now.strftime('%Y%m%dT%H%M%S.%fZ')}-{digest[:8]}"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ApplyError(f"cannot create backup dir {self.directory}: {e.strerror}") from e
        path = self.directory / backup_id
        if not (same and hard_link(real, path)):
            atomic_write(path, known[1].encode() if data is None else data, mode=0o600)
        meta = {"id": backup_id, "original": str(original), "sha256": digest, "created": now.isoformat()}
        atomic_write(self._sidecar(backup_id), json.dumps(meta, indent=1) + "\n", mode=0o600)
        self._prune(original)
        return Backup(backup_id, path, original, digest, now)

    def list(self, original: str | os.PathLike[str] | None = None) -> list[Backup]:
        """Backups, newest first; only those of ``original`` if given."""
        want = Path(os.path.abspath(original)) if original is not None else None
        found = []
        for sidecar in self.directory.glob("*.json"):
            b = self._load(sidecar)
            if b is not None and (want is None or b.original == want):
                found.append(b)
        return sorted(found, key=lambda b: b.id, reverse=True)

    def get(self, backup_id: str) -> Backup:
        """The backup called ``backup_id``.

        :raises ConfigError: no such backup in this store.
        """
        b = None
        if backup_id and "/" not in backup_id and not backup_id.startswith("."):
            b = self._load(self._sidecar(backup_id))
        if b is None:
            known = ", ".join(x.id for x in self.list()[:3]) or "none"
            raise ConfigError(f"unknown backup id {backup_id!r} in {self.directory} (newest: {known})")
        return b

    def latest(self, original: str | os.PathLike[str] | None = None) -> Backup | None:
        """The newest backup (of ``original`` if given), or None."""
        backups = self.list(original)
        return backups[0] if backups else None

    def restore(self, backup: Backup | str, to: str | os.PathLike[str] | None = None) -> Path:
        """Atomically write a backup's content back to its original path (or ``to``).

        :raises ConfigError: unknown id.  :raises ApplyError: corrupt copy or write failure.
        """
        b = self.get(backup) if isinstance(backup, str) else backup
        return atomic_write(to if to is not None else b.original, b.read_bytes())

    def _sidecar(self, backup_id: str) -> Path:
        return self.directory / f"{backup_id}.json"

    def _load(self, sidecar: Path) -> Backup | None:
        import json

        try:
            meta = json.loads(sidecar.read_text())
            b = Backup(meta["id"], self.directory / meta["id"], Path(meta["original"]),
                       meta["sha256"], datetime.fromisoformat(meta["created"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return b if b.id == sidecar.stem and b.path.is_file() else None

    def _prune(self, original: Path) -> None:
        for old in self.list(original)[self.keep:]:
            for p in (self._sidecar(old.id), old.path):  # sidecar first: no half-listed backup
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()


@contextlib.contextmanager
def apply_lock(path: str | os.PathLike[str], timeout: float, target: str | None = None) -> Iterator[Path]:
    """Hold an exclusive ``flock`` on ``path`` for the block; poll for at most ``timeout`` seconds.

    The lock file is created if needed and keeps the holder's PID and since when it
    holds it; it is never deleted (deleting a flock file races with the next holder).
    While waiting, logs who holds it, then a progress line every ``LOCK_PROGRESS`` s.

    :raises LockedError: still held by someone else when the timeout expired.
    """
    lock = Path(path)
    name = target or lock.stem
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        started = time.monotonic()
        deadline, progress = started + timeout, None
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                    raise
            now = time.monotonic()
            if now >= deadline:
                raise LockedError(f"another lbctl is applying to {name} (lock {lock}{holder(fd)})")
            if progress is None:
                log.info("%s: waiting up to %gs for another lbctl's apply to finish (lock %s%s)", name, timeout,
                         lock, holder(fd))
                progress = now + LOCK_PROGRESS
            elif now >= progress:
                log.info("%s: still waiting for the apply lock (%.0fs of %gs%s)", name, now - started, timeout, holder(fd))
                progress = now + LOCK_PROGRESS
            time.sleep(min(_LOCK_POLL, max(0.0, deadline - time.monotonic())))
        os.ftruncate(fd, 0)
        since = datetime.now(timezone.utc).isoformat(timespec="seconds")
        os.pwrite(fd, f"{os.getpid()} {since}\n".encode(), 0)
        try:
            yield lock
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the flock


def holder(fd: int) -> str:
    """", held by pid N since T" from a lock file's content, or "" if it names no one."""
    words = os.pread(fd, 64, 0).decode(errors="replace").split()
    if not words or not words[0].isdigit():
        return ""
    return f", held by pid {words[0]}" + (f" since {words[1]}" if len(words) > 1 else "")
