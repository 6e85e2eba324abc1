"""Which files below a folder were opened, by this process or any other (Linux inotify): what a test that says
"nothing was read again" counts, whoever did the reading and however."""

from __future__ import annotations

import ctypes
import os
import struct
from pathlib import Path

IN_OPEN, IN_ISDIR = 0x20, 0x40000000
_EVENT = struct.Struct("iIII")  # watch descriptor, mask, cookie, length of the name that follows


class FileOpens:
    """Watches ``root`` and every folder below it (links not followed) from now on."""

    def __init__(self, root: Path):
        self.libc = ctypes.CDLL("libc.so.6", use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.root = root
        self.folders: dict[int, Path] = {}
        for folder in [root, *(p for p in root.rglob("*") if p.is_dir() and not p.is_symlink())]:
            watch = self.libc.inotify_add_watch(self.fd, bytes(folder), IN_OPEN)
            if watch < 0:
                raise OSError(ctypes.get_errno(), f"inotify_add_watch {folder}")
            self.folders[watch] = folder

    def opened(self) -> list[str]:
        """The files opened since the last call, relative to the root, in order (a file opened twice: twice)."""
        found = []
        while True:
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return found
            offset = 0
            while offset < len(data):
                watch, mask, _, length = _EVENT.unpack_from(data, offset)
                name = data[offset + _EVENT.size : offset + _EVENT.size + length].rstrip(b"\0").decode()
                offset += _EVENT.size + length
                if name and not mask & IN_ISDIR:
                    found.append((self.folders[watch] / name).relative_to(self.root).as_posix())

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> FileOpens:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
