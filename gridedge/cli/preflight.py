"""What ``gridedge check`` verifies beyond the config text: what ``gridedge run`` will need.

Each check tries the real operation instead of reading permission bits: root may write through
mode 0555 but not to a read-only mount, and ``os.access`` answers for the real user id, not the
effective one. So the outbox folder is proven writable by creating (and removing) a file in it,
and a referenced file is proven readable by reading from it.

Problems raise :class:`~gridedge.errors.ConfigError` naming the key; a missing serial port is
only a warning, since USB adapters come and go.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from gridedge.config import Config
from gridedge.errors import ConfigError
from gridedge.links.modbus.settings import ModbusRtuLinkConfig

_UPSTREAM_FILES = ("ca_file", "cert_file", "key_file", "password_file")


def preflight(config: Config) -> list[str]:
    """Check that ``config``'s files, folders and devices are usable; returns warnings.

    Raises:
        ConfigError: the outbox cannot be created or written, a referenced file cannot be read,
            a folder cannot be listed, or a password variable is not set (names the key).
    """
    source = config.source
    _check_outbox(config.outbox.path, source)
    drivers_dir = config.gateway.drivers_dir
    if drivers_dir is not None:
        try:
            os.listdir(drivers_dir)
        except OSError as exc:
            raise ConfigError(
                "gateway.drivers_dir", f"cannot list {drivers_dir}: {exc.strerror}", source
            ) from None
    for i, upstream in enumerate(config.upstreams):
        for key in _UPSTREAM_FILES:
            path: Path | None = getattr(upstream, key)
            if path is not None:
                _check_readable(path, f"upstreams[{i}].{key}", source)
        env = upstream.password_env
        if env is not None and env not in os.environ:
            raise ConfigError(
                f"upstreams[{i}].password_env", f"environment variable {env} is not set", source
            )
    return _serial_warnings(config)


def _check_outbox(path: Path, source: str | None) -> None:
    key = "outbox.path"
    if path.is_dir():
        raise ConfigError(key, f"{path} is a folder; name the outbox file in it", source)
    folder = path.parent
    # The daemon creates missing folders: the nearest existing one must then be writable.
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ConfigError(key, f"{folder} is not a folder, so {path} cannot be created", source)
    try:
        fd, probe = tempfile.mkstemp(prefix=".gridedge-check-", dir=folder)
    except OSError as exc:
        raise ConfigError(key, f"folder {folder} is not writable: {_reason(exc)}", source) from None
    os.close(fd)
    os.unlink(probe)
    if path.exists():
        try:
            with path.open("r+b"):
                pass
        except OSError as exc:
            raise ConfigError(key, f"cannot write {path}: {_reason(exc)}", source) from None


def _check_readable(path: Path, key: str, source: str | None) -> None:
    try:
        with path.open("rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise ConfigError(key, f"cannot read {path}: {_reason(exc)}", source) from None


def _serial_warnings(config: Config) -> list[str]:
    warnings: list[str] = []
    seen: set[str] = set()
    for meter in config.meters:
        link = meter.link
        if not isinstance(link, ModbusRtuLinkConfig) or link.port in seen:
            continue
        seen.add(link.port)
        where = f"meter {meter.id!r} link.port"
        try:
            fd = os.open(link.port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError as exc:
            hint = ""
            if exc.errno == errno.EACCES:
                hint = " (add the gateway's user to the 'dialout' group)"
            elif exc.errno == errno.ENOENT:
                hint = " (not plugged in? gridedge keeps trying it)"
            warnings.append(f"{where}: cannot open {link.port}: {_reason(exc)}{hint}")
            continue
        os.close(fd)
    return warnings


def _reason(exc: OSError) -> str:
    """``EACCES Permission denied``: the errno name for searching, the text for reading."""
    name = errno.errorcode.get(exc.errno, "") if exc.errno is not None else ""
    return f"{name} {exc.strerror}".strip() if exc.strerror else str(exc)
