"""Files written whole or not at all (a reader, another request or a resumed run, never
sees half of one, and a kill mid-write leaves the old file in place), and the one folder
Loomis keeps downloads and built graphs in."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write", "cache_root", "new_file_mode"]


def _proc_umask() -> int | None:
    """This process's umask from ``/proc/self/status`` (Linux 4.7+), else None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _umask_at_import() -> int:
    # setting the umask to read it is not thread-safe: done once, while this module loads,
    # and only where /proc cannot tell
    mask = _proc_umask()
    if mask is None:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


_UMASK = _umask_at_import()


def new_file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file: 0o666 less the umask (safetensors
    writes its files 0600 whatever the umask: give them this one)."""
    mask = _proc_umask()
    return 0o666 & ~(_UMASK if mask is None else mask)


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Call ``write(tmp_path)`` then move the finished file onto ``path`` in one rename.

    The temporary is ``.NAME.XXXXXXXX.tmp`` beside ``path`` (what
    :func:`loomis.train.checkpoint.remove_stale_temporaries` looks for after a kill), and
    the file gets the mode a plain ``open(path, "w")`` would give it, not mkstemp's 0600:
    run folders and exported models stay readable by whoever the umask lets read them."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, new_file_mode())   # after write: a writer may have made the file anew
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
