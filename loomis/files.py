"""Files written whole or not at all (a reader, another request or a resumed run, never
sees half of one, and a kill mid-write leaves the old file in place), and the one folder
Loomis keeps downloads and built graphs in."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write", "cache_root"]


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Call ``write(tmp_path)`` then move the finished file onto ``path`` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def cache_root() -> Path:
    """``$LOOMIS_CACHE``, else ``$XDG_CACHE_HOME/loomis``, else ``~/.cache/loomis``."""
    root = os.environ.get("LOOMIS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "loomis")
    return Path(root)
