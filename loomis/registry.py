"""Which generator each engine uses, where it comes from, and one shared loaded copy of it.

Why a registry: the app serves four generators (pix2pix and CycleGAN, both directions) to
many concurrent requests. Each must be loaded once, from the Hugging Face Hub when it can
be reached or is cached, else from the copy bundled under ``checkpoints/`` (a Space or a
laptop without network still works), and the page must say which copy it is using and why.

Defaults live in :data:`DEFAULTS` and nowhere else. Environment variables override them:

* ``LOOMIS_<ENGINE>_MODEL`` (e.g. ``LOOMIS_PIX2PIX_PHOTO2DRAWING_MODEL``): a Hub id
  (``org/name`` or ``org/name@revision``) or a local folder;
* ``LOOMIS_CHECKPOINTS``: the folder holding the bundled copies (default ``checkpoints/``
  next to the package);
* the Hub's own ``HF_HUB_OFFLINE``, ``HF_HUB_CACHE`` and ``HF_TOKEN``, read by
  ``huggingface_hub`` itself.

Resolution (:meth:`ModelRegistry.resolve`) is cheap: ``snapshot_download`` finds the
folder in the Hub cache (or downloads it) and the resolved commit is the snapshot folder's
name. Loading (:meth:`ModelRegistry.translator`) builds a :class:`~loomis.runtime.GraphTranslator`
once per engine under that engine's own lock, so two engines load in parallel and a
second request for the same engine waits for the first load instead of repeating it.
"""
from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

HUB_ORG = "loomis-art"
ENGINES = ("pix2pix-photo2drawing", "pix2pix-drawing2photo",
           "cyclegan-photo2drawing", "cyclegan-drawing2photo")
#: the folder and Hub name of the photo → head pose network (loomis.train.pose_net; the training
#: kit's, not served by the app)
POSE_NET = "posenet-photo"
# model name → (Hub id, bundled folder name under the checkpoints folder)
DEFAULTS: dict[str, tuple[str, str]] = {name: (f"{HUB_ORG}/{name}", name) for name in ENGINES}
_FILES = ["config.json", "model.safetensors", "README.md", "model.onnx", "training.json"]
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


class ModelUnavailable(ValueError):
    """An engine with no usable weights anywhere; the message says what was tried."""


def env_var(engine: str) -> str:
    """``pix2pix-photo2drawing`` → ``LOOMIS_PIX2PIX_PHOTO2DRAWING_MODEL``."""
    return "LOOMIS_" + re.sub(r"\W", "_", engine).upper() + "_MODEL"


def checkpoints_dir() -> Path:
    """The folder of bundled generators (``$LOOMIS_CHECKPOINTS`` or ``<repo>/checkpoints``)."""
    return Path(os.environ.get("LOOMIS_CHECKPOINTS") or Path(__file__).resolve().parent.parent / "checkpoints")


def generator_folders(root: Path) -> list[Path]:
    """The generator folders under ``root`` (sub-folders whose config.json names a generator
    architecture; the pose net's folder beside them is not one), sorted."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / "config.json").is_file()
                  and "arch" in json.loads((p / "config.json").read_text()))


@dataclass
class Source:
    """Where an engine's weights were found: the Hub (id + commit) or a local folder."""
    engine: str
    folder: Path | None            # the folder holding config.json / model.safetensors
    kind: str                      # "hub", "bundled", "local" or "unavailable"
    hub_id: str | None = None
    revision: str | None = None    # requested revision (None = main)
    commit: str | None = None      # resolved 40-hex commit of a Hub snapshot
    fallback_reason: str | None = None  # why the Hub copy was not used
    offline_cache: bool = False    # a Hub snapshot read from the local cache with HF_HUB_OFFLINE

    def describe(self) -> str:
        """One line for people: which copy, and why not the Hub when it is not."""
        if self.kind == "hub":
            return (f"Hub `{self.hub_id}` @ `{self.commit}`"
                    + (f" (revision {self.revision})" if self.revision else "")
                    + (" from the local Hub cache (offline)" if self.offline_cache else ""))
        if self.kind == "local":
            return f"local folder `{self.folder}` (set by {env_var(self.engine)})"
        if self.kind == "bundled":
            return f"bundled copy `{self.folder}` (Hub `{self.hub_id}` not used: {self.fallback_reason})"
        return f"unavailable: {self.fallback_reason}"


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip().rstrip(":")


def _offline() -> bool:
    from huggingface_hub import constants
    return bool(constants.HF_HUB_OFFLINE)


@dataclass
class _Slot:
    lock: threading.Lock = field(default_factory=threading.Lock)
    source: Source | None = None
    model: object | None = None      # the loaded Translator


class ModelRegistry:
    """Resolves and loads each engine's generator once; safe to share
    between threads."""

    def __init__(self, engines: tuple[str, ...] = ENGINES) -> None:
        self._slots = {name: _Slot() for name in engines}

    @property
    def engines(self) -> list[str]:
        return list(self._slots)

    def _slot(self, engine: str) -> _Slot:
        if engine not in self._slots:
            raise ValueError(f"unknown engine {engine!r}; choose from {', '.join(self._slots)}")
        return self._slots[engine]

    @staticmethod
    def requested(engine: str) -> tuple[str | None, str | None, Path | None]:
        """``(hub_id, revision, local_folder)`` asked for by the defaults and environment."""
        hub_id, _ = DEFAULTS[engine]
        value = os.environ.get(env_var(engine), "").strip()
        if value:
            if Path(value).expanduser().is_dir():
                return None, None, Path(value).expanduser()
            hub_id = value
        revision = None
        if "@" in hub_id:
            hub_id, revision = hub_id.split("@", 1)
        return hub_id, revision, None

    def _find(self, engine: str) -> Source:
        hub_id, revision, local = self.requested(engine)
        if local is not None:
            return Source(engine, local, "local")
        reason = None
        if not _HUB_ID.match(hub_id):
            reason = f"{env_var(engine)}={hub_id!r} is neither an existing folder nor a Hub id"
        else:
            from huggingface_hub import snapshot_download
            try:
                folder = Path(snapshot_download(hub_id, revision=revision, allow_patterns=_FILES))
                if not (folder / "model.safetensors").is_file():
                    raise FileNotFoundError(f"{hub_id} has no model.safetensors")
                return Source(engine, folder, "hub", hub_id, revision, commit=folder.name,
                              offline_cache=_offline())
            except Exception as exc:  # every "not reachable / not cached" case lands here
                reason = ("HF_HUB_OFFLINE=1 and it is not in the Hub cache" if _offline()
                          else f"the Hub could not be reached and it is not cached ({_short(exc)})")
        bundled = checkpoints_dir() / DEFAULTS[engine][1]
        if (bundled / "model.safetensors").is_file():
            return Source(engine, bundled, "bundled", hub_id, revision, fallback_reason=reason)
        return Source(engine, None, "unavailable", hub_id, revision,
                      fallback_reason=f"Hub `{hub_id}`: {reason}; no bundled copy at {bundled}")

    def resolve(self, engine: str) -> Source:
        """Where the engine's weights are (found once, then remembered)."""
        slot = self._slot(engine)
        with slot.lock:
            if slot.source is None:
                slot.source = self._find(engine)
            return slot.source

    def translator(self, engine: str):
        """The engine's shared :class:`~loomis.runtime.GraphTranslator` (ONNX Runtime, no
        torch), loaded on first use.

        Raises :class:`ModelUnavailable` when no weights exist anywhere or they cannot load.
        """
        from loomis.runtime import GraphTranslator
        return self._load(engine, "generator", GraphTranslator.from_folder)

    def _load(self, engine: str, what: str, load):
        source = self.resolve(engine)
        slot = self._slot(engine)
        with slot.lock:
            if slot.model is None:
                if source.folder is None:
                    raise ModelUnavailable(
                        f"The {engine} {what} is not available: {source.fallback_reason}. "
                        f"Train it (see docs/training.md), put it under {checkpoints_dir()}, or point "
                        f"{env_var(engine)} at a Hub id or folder")
                try:
                    slot.model = load(source.folder)
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    raise ModelUnavailable(f"The {engine} {what} at {source.folder} could "
                                           f"not be loaded: {_short(exc)}") from exc
            return slot.model

    def info(self, engine: str) -> dict:
        """Source, config and model-card metrics of an engine, for the Models tab."""
        source = self.resolve(engine)
        out = {"engine": engine, "source": source, "config": None, "metrics": None}
        if source.folder is not None:
            config = source.folder / "config.json"
            card = source.folder / "README.md"
            if config.is_file():
                out["config"] = json.loads(config.read_text())
            if card.is_file():
                out["metrics"] = card_metrics(card.read_text())
        return out


def card_metrics(card: str) -> str | None:
    """The "## Evaluation" section of a model card (markdown), or None when it has none."""
    match = re.search(r"^## Evaluation\s*\n(.*?)(?=^## |\Z)", card, flags=re.S | re.M)
    if not match:
        return None
    return match.group(1).strip() or None
