"""The files around an outbox database: owner lock, spare reserve, sizes, moving a file aside.

An outbox ``<path>`` lives with up to five files in its folder: the database, SQLite's
``<path>-wal`` and ``<path>-shm``, ``<path>.lock`` (an advisory ``flock`` held by the one
process that owns the outbox; it holds that process's pid) and ``<path>.spare`` (a
preallocated reserve, deleted when the filesystem is full so that the outbox can still
delete and checkpoint, recreated once space returns). None of this touches SQLite.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
from pathlib import Path

from gridedge.errors import OutboxError

SIDE_SUFFIXES = ("-wal", "-shm")
"""SQLite's files beside a WAL-mode database; they belong with it when it is moved."""


def side_file(path: Path, suffix: str) -> Path:
    """``<path><suffix>`` in the same folder."""
    return path.with_name(path.name + suffix)


def disk_bytes(path: Path) -> int:
    """Bytes the database, its WAL, its shared-memory file and the spare take up now."""
    total = 0
    for candidate in (path, *(side_file(path, s) for s in (*SIDE_SUFFIXES, ".spare"))):
        with contextlib.suppress(FileNotFoundError):
            total += candidate.stat().st_size
    return total


def prepare_path(path: Path) -> bool:
    """Create the parent folder; whether a WAL file was left behind (an unclean stop).

    Raises:
        OutboxError: the path is a folder, or its parent cannot be created.
    """
    if path.is_dir():
        raise OutboxError(f"cannot open outbox {path}: it is a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutboxError(f"cannot open outbox {path}: {exc}") from exc
    return side_file(path, "-wal").exists()


class OwnerLock:
    """The advisory lock that makes one process the owner of an outbox.

    ``flock`` locks belong to the open file, so the kernel releases this one when the process
    ends, however it ends; a stale lock file left by a killed daemon does not block a restart.
    """

    def __init__(self, path: Path) -> None:
        self.path = side_file(path, ".lock")
        self._outbox = path
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock without waiting and write this process's pid into the lock file.

        Raises:
            OutboxError: another process holds it (the message names its pid), or the lock
                file cannot be created.
        """
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise OutboxError(f"cannot lock outbox {self._outbox}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_pid(fd)
            os.close(fd)
            raise OutboxError(
                f"outbox {self._outbox} is in use by another gridedge process (pid {holder});"
                " one outbox has one owner: stop that process or configure another outbox.path"
            ) from None
        # The pid is for people; the lock is the flock, so a full disk here is no failure.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Give the lock up (closing the descriptor releases it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text or "unknown"


class Spare:
    """A preallocated reserve file, given back to the filesystem when it is full.

    SQLite needs free space even to delete: the deleting transaction goes through the WAL. The
    spare is that space, held in advance.
    """

    def __init__(self, path: Path, size: int) -> None:
        self.path = side_file(path, ".spare")
        self.size = size

    @property
    def present(self) -> bool:
        """Whether the reserve is held now."""
        try:
            return self.path.stat().st_size >= self.size
        except FileNotFoundError:
            return False

    def ensure(self) -> bool:
        """Allocate the reserve if it is missing; whether it is held afterwards.

        It is not taken back while the filesystem has less than twice its size free: the
        outbox would only find the disk full again at its next commit.
        """
        if self.present:
            return True
        try:
            fs = os.statvfs(self.path.parent)
            if fs.f_bavail * fs.f_frsize < 2 * self.size:
                return False
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                os.posix_fallocate(fd, 0, self.size)
            finally:
                os.close(fd)
        except OSError:
            self.release()  # a partial reserve would take space without being countable
            return False
        return True

    def release(self) -> bool:
        """Delete the reserve; whether there was one to free."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        except OSError:
            return False
        return True


class FileWatch:
    """Notices when the database file under an open outbox is deleted or replaced.

    SQLite goes on writing into a deleted file without an error: the data would vanish at the
    next restart. Comparing the inode the path names with the one that was opened finds it.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._identity = self._stat()

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self._path.stat()
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def problem(self) -> str | None:
        """What is wrong with the file, or None while it is the one that was opened."""
        now = self._stat()
        if now is None:
            return f"outbox file {self._path} was deleted while open"
        if now != self._identity:
            return f"outbox file {self._path} was replaced while open"
        return None


def move_aside(path: Path, now: dt.datetime) -> list[Path]:
    """Rename the database and its WAL/shm files with a UTC timestamp; the new names.

    The caller holds the :class:`OwnerLock`, so no daemon writes to the files meanwhile.

    Raises:
        OutboxError: there is no database at ``path``, or a rename failed.
    """
    if not path.is_file():
        raise OutboxError(f"no outbox at {path}")
    stamp = now.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    moved = []
    try:
        for suffix in ("", *SIDE_SUFFIXES):
            source = side_file(path, suffix)
            if source.exists():
                dest = side_file(target, suffix)
                source.rename(dest)
                moved.append(dest)
    except OSError as exc:
        raise OutboxError(f"cannot move outbox {path} aside: {exc}") from exc
    return moved
