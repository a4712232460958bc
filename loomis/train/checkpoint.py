"""Training state on disk without pickle: tensors in safetensors, structure in its header.

Resuming a run needs nested Python state (optimizer dicts with integer keys, RNG tuples,
scheduler counters) next to tensors. ``torch.save`` would pickle all of it, and loading a
pickle runs arbitrary code. Here every tensor goes into one ``.safetensors`` file and the
surrounding structure is encoded as tagged JSON in the file's metadata, so loading parses
data only. Writes are atomic (temporary file, fsync, rename): an interrupted save never
leaves a half-written checkpoint.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from loomis.files import atomic_write

__all__ = ["save_state", "load_state", "atomic_write", "hash_weights",
           "remove_stale_temporaries"]

_META_KEY = "loomis_state"


def _encode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        name = f"t{len(tensors)}"
        tensors[name] = obj.detach().cpu().contiguous().clone()
        return {"$t": name}
    if isinstance(obj, np.ndarray):
        name = f"t{len(tensors)}"
        tensors[name] = torch.from_numpy(np.ascontiguousarray(obj).copy())
        return {"$np": name}
    if isinstance(obj, dict):
        return {"$d": [[_encode(k, tensors), _encode(v, tensors)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"$tu": [_encode(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, tensors) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint")


def _decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "$t" in obj:
            return tensors[obj["$t"]]
        if "$np" in obj:
            return tensors[obj["$np"]].numpy()
        if "$tu" in obj:
            return tuple(_decode(v, tensors) for v in obj["$tu"])
        if "$d" in obj:
            return {_decode(k, tensors): _decode(v, tensors) for k, v in obj["$d"]}
    return obj


def hash_weights(module: torch.nn.Module, h=None):
    """Feed a module's weights into a hash (sha256 unless ``h`` is given) and return it.

    Every state-dict entry in order, its name then its bytes: the same weights give the
    same digest on every machine, which is what the ONNX cache's file names
    (``loomis.train.inference``) and the training runs' weight records (:mod:`loomis.train.loop`) key
    on."""
    if h is None:
        h = hashlib.sha256()
    for k, v in module.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h


def save_state(path: str | os.PathLike, state: dict) -> Path:
    """Write a nested state (tensors, numbers, strings, dicts, lists, tuples) atomically."""
    tensors: dict[str, torch.Tensor] = {}
    tree = _encode(state, tensors)
    meta = {_META_KEY: json.dumps(tree)}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def load_state(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict:
    """Read what :func:`save_state` wrote (no unpickling involved)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if _META_KEY not in meta:
        raise ValueError(f"{path} is not a Loomis training checkpoint")
    tensors = load_file(str(path), device=str(device))
    return _decode(json.loads(meta[_META_KEY]), tensors)


def remove_stale_temporaries(folder: str | os.PathLike, names: str) -> list[tuple[Path, int]]:
    """Delete the temporaries an interrupted :func:`atomic_write` left in ``folder`` for the
    files whose names fully match the regular expression ``names``; (path, bytes) of each.

    A kill during a write leaves ``.NAME.XXXXXXXX.tmp`` (mkstemp's eight characters), as
    large as the file it was writing (a whole training state). Only regular files named
    exactly so go; call it while nothing is writing those files."""
    pattern = re.compile(rf"\.(?:{names})\.[a-z0-9_]{{8}}\.tmp")
    removed = []
    if not Path(folder).is_dir():
        return removed
    for entry in os.scandir(folder):
        if pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
            size = entry.stat(follow_symlinks=False).st_size
            os.unlink(entry.path)
            removed.append((Path(entry.path), size))
    return removed
