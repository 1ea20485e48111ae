"""Reading the files a user hands remediate: bounded, regular, UTF-8, or refused by name.

Every file remediate reads as input (a playbook, a saved plan, the configuration, a scenario
file) goes through ``read_text``: a FIFO would hang the run, ``/dev/zero`` would fill memory,
and a UTF-16 or binary file would be an internal error with no name. Each of those is refused
with exit 64 and one line naming the file (issue 12, point 6).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from remediate.errors import UsageError

#: The largest input file read, by kind. A shipped playbook is a few kilobytes; a plan for a
#: large fleet org a few hundred.
LIMITS = {"playbook": 1 << 20, "plan": 16 << 20, "configuration": 1 << 20,
          "scenario": 4 << 20}
#: The largest answer body the gateway accepts from a server (a readMetadata of 10 profiles
#: stays well below it).
MAX_ANSWER_BYTES = 64 << 20


class InputError(UsageError):
    """An input file that is not a bounded regular UTF-8 text file."""


def check_file(path: Path, what: str, limit: int | None = None) -> int:
    """Refuse anything but a regular file of at most ``limit`` bytes; returns its size.
    ``stat`` (not ``open``) first, so a FIFO is refused without blocking on it."""
    limit = LIMITS.get(what, 1 << 20) if limit is None else limit
    try:
        info = os.stat(path)
    except OSError as exc:
        raise InputError(f"{path}: cannot read the {what} ({exc.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a FIFO" if stat.S_ISFIFO(info.st_mode) else \
            "a directory" if stat.S_ISDIR(info.st_mode) else \
            "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else \
            "not a regular file"
        raise InputError(f"{path}: the {what} is {kind}, not a regular file")
    if info.st_size > limit:
        raise InputError(f"{path}: the {what} is {info.st_size} bytes, more than the "
                         f"{limit} this remediate reads")
    return info.st_size


def read_text(path: Path, what: str, limit: int | None = None) -> str:
    """The file's text, after ``check_file``; not UTF-8 (a UTF-16 file, a binary) is refused."""
    limit = LIMITS.get(what, 1 << 20) if limit is None else limit
    check_file(path, what, limit)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise InputError(f"{path}: cannot read the {what} ({exc.strerror})") from None
    if len(data) > limit:  # grew since the stat
        raise InputError(f"{path}: the {what} is more than the {limit} bytes this remediate "
                         "reads")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in data:
        raise InputError(f"{path}: the {what} is not UTF-8 text (UTF-16 or binary); save it "
                         "as UTF-8")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: the {what} is not UTF-8 text (byte {exc.start} is not "
                         "valid UTF-8); save it as UTF-8") from None
