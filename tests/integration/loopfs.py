"""A real small ext4 filesystem on a loop device, to fill up or turn read-only under a test."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class LoopFs:
    """A mounted filesystem: its mount point and loop device name (``loop3``)."""

    mount: Path
    device: str

    def fill(self, name: str = "filler") -> Path:
        """Write a file until the filesystem has no free block left; the file."""
        filler = self.mount / name
        chunk = b"\xa5" * (64 * 1024)
        with filler.open("wb", buffering=0) as f:
            for size in (len(chunk), 4096, 512, 1):
                with contextlib.suppress(OSError):
                    while True:
                        f.write(chunk[:size])
            with contextlib.suppress(OSError):
                os.fsync(f.fileno())
        probe = self.mount / "probe"
        try:
            with pytest.raises(OSError, match="No space left"):
                _write_synced(probe, b"x" * 4096)
        finally:
            probe.unlink(missing_ok=True)
        return filler

    def turn_read_only(self) -> None:
        """Raise a filesystem error in ext4 (mounted errors=remount-ro): it goes read-only."""
        Path(f"/sys/fs/ext4/{self.device}/trigger_fs_error").write_text("gridedge test\n")
        options = next(
            line.split()[3]
            for line in Path("/proc/mounts").read_text().splitlines()
            if line.split()[1] == str(self.mount)
        )
        flags = options.split(",")
        assert flags[0] == "ro" or "emergency_ro" in flags, options


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb", buffering=0) as f:
        f.write(data)
        os.fsync(f.fileno())


@contextlib.contextmanager
def loop_fs(folder: Path, size_mib: int, *, options: str = "") -> Iterator[LoopFs]:
    """A fresh ext4 image of ``size_mib`` in ``folder``, loop-mounted; unmounted afterwards.

    Needs root and the loop driver; without them the test fails (it never skips).
    """
    assert os.geteuid() == 0, "loop-mounting a filesystem needs root"
    for tool in ("mkfs.ext4", "mount", "umount", "findmnt"):
        assert shutil.which(tool), f"{tool} is not installed"
    image, mount = folder / "fs.img", folder / "mnt"
    mount.mkdir()
    with image.open("wb") as f:
        f.truncate(size_mib * 1024 * 1024)
    # -m 0: no blocks reserved for root, so "full" means full for this (root) process too.
    subprocess.run(["mkfs.ext4", "-q", "-m", "0", str(image)], check=True, timeout=60)
    mount_options = "loop" + (f",{options}" if options else "")
    subprocess.run(["mount", "-o", mount_options, str(image), str(mount)], check=True, timeout=60)
    try:
        source = subprocess.run(
            ["findmnt", "-n", "-o", "SOURCE", str(mount)],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.strip()
        yield LoopFs(mount, Path(source).name)
    finally:
        # Lazy: a test that failed may leave a file open; the mount goes once it is closed.
        subprocess.run(["umount", "-l", str(mount)], check=False, timeout=60)
