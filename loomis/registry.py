"""Which generator each engine uses, where it comes from, and one shared loaded copy of it.

Why a registry: the app serves four generators (pix2pix and CycleGAN, both directions) to
many concurrent requests. Each must be loaded once, from the Hugging Face Hub when it can
be reached or is cached, else from the copy bundled under ``checkpoints/`` (a Space or a
laptop without network still works), and the page must say which copy it is using and why.

Defaults live in :data:`DEFAULTS` and nowhere else. Environment variables override them:

* ``LOOMIS_<ENGINE>_MODEL`` (e.g. ``LOOMIS_PIX2PIX_PHOTO2DRAWING_MODEL``): a Hub id
  (``org/name`` or ``org/name@revision``) or a local folder; a value that is neither (a
  mistyped path) is a :class:`ModelSettingError` when the registry is created, so the app
  does not start, instead of silently serving the bundled copy;
* ``LOOMIS_CHECKPOINTS``: the folder holding the bundled copies (default ``checkpoints/``
  next to the package);
* the Hub's own ``HF_HUB_OFFLINE``, ``HF_HUB_CACHE`` and ``HF_TOKEN``, read by
  ``huggingface_hub`` itself.

Resolution (:meth:`ModelRegistry.resolve`) is cheap: ``snapshot_download`` finds the
folder in the Hub cache (or downloads it), the resolved commit is the snapshot folder's
name, and the folder is checked (config sizes, weight shapes, memory:
:func:`loomis.generator_config.check_model_folder`) without reading its weights. Loading
(:meth:`ModelRegistry.translator`) builds a :class:`~loomis.runtime.GraphTranslator` once
per engine under that engine's own lock, so two engines load in parallel and a second
request for the same engine waits for the first load instead of repeating it. A copy that
fails its check or its load is remembered as failed (never retried per request) and the
bundled copy serves instead; :meth:`ModelRegistry.info` says why, in a plain sentence.
"""
from __future__ import annotations

import json
import logging
import os
import re
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

log = logging.getLogger(__name__)

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


class ModelSettingError(ValueError):
    """A ``LOOMIS_*_MODEL`` setting that names neither an existing folder nor a Hub id: a
    mistake to correct before the app serves, never replaced by the bundled copy."""


def env_var(engine: str) -> str:
    """``pix2pix-photo2drawing`` → ``LOOMIS_PIX2PIX_PHOTO2DRAWING_MODEL``."""
    return "LOOMIS_" + re.sub(r"\W", "_", engine).upper() + "_MODEL"


def checkpoints_dir() -> Path:
    """The folder of bundled generators (``$LOOMIS_CHECKPOINTS`` or ``<repo>/checkpoints``)."""
    return Path(os.environ.get("LOOMIS_CHECKPOINTS") or Path(__file__).resolve().parent.parent / "checkpoints")


def _names_generator(config: Path) -> bool:
    try:
        return "arch" in json.loads(config.read_text())
    except (OSError, ValueError, TypeError):     # unreadable or not a JSON object: not one
        return False


def generator_folders(root: Path) -> list[Path]:
    """The generator folders under ``root`` (sub-folders whose config.json names a generator
    architecture; the pose net's folder beside them is not one), sorted."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / "config.json").is_file()
                  and _names_generator(p / "config.json"))


@dataclass
class Source:
    """Where an engine's weights were found: the Hub (id + commit) or a local folder."""
    engine: str
    folder: Path | None            # the folder holding config.json / model.safetensors
    kind: str                      # "hub", "bundled", "local" or "unavailable"
    hub_id: str | None = None
    revision: str | None = None    # requested revision (None = main)
    commit: str | None = None      # resolved 40-hex commit of a Hub snapshot
    fallback_reason: str | None = None  # why the copy asked for is not used
    offline_cache: bool = False    # a Hub snapshot read from the local cache with HF_HUB_OFFLINE
    wanted: str | None = None      # the copy asked for, when another serves ("Hub `org/name`")
    problem: str | None = None     # a plain sentence when that copy is broken or none serves

    def describe(self) -> str:
        """One line for people: which copy, and why not the one asked for when it is not."""
        if self.kind == "hub":
            return (f"Hub `{self.hub_id}` @ `{self.commit}`"
                    + (f" (revision {self.revision})" if self.revision else "")
                    + (" from the local Hub cache (offline)" if self.offline_cache else ""))
        if self.kind == "local":
            return f"local folder `{self.folder}` (set by {env_var(self.engine)})"
        if self.kind == "bundled":
            wanted = self.wanted or f"Hub `{self.hub_id}`"
            return f"bundled copy `{self.folder}` ({wanted} not used: {self.fallback_reason})"
        return f"unavailable: {self.fallback_reason}"


def _hub_problem(exc: BaseException, hub_id: str, revision: str | None) -> str:
    """Why a Hub model could not be had, in words (the exception itself goes to the log)."""
    from huggingface_hub import errors

    log.info("Hub model %s not used: %r", hub_id, exc)
    if _offline():
        return "HF_HUB_OFFLINE=1 and it is not in the Hub cache"
    if isinstance(exc, errors.GatedRepoError):
        return "the Hub model is gated: accept its terms on the Hub and set HF_TOKEN"
    if isinstance(exc, errors.RepositoryNotFoundError):
        return "the Hub has no model by that name (or it is private: set HF_TOKEN)"
    if isinstance(exc, errors.RevisionNotFoundError):
        return f"the Hub model has no revision `{revision}`"
    return "the Hub could not be reached and no copy of it is cached"


def _load_problem(exc: BaseException, folder: Path) -> str:
    """Why a folder's generator did not load, in words: the checks' own sentence, or for
    anything unexpected a pointer to the log, which gets the traceback."""
    from loomis.generator_config import CheckpointError

    if isinstance(exc, CheckpointError):
        log.warning("generator at %s refused: %s", folder, exc)
        return str(exc)
    if isinstance(exc, MemoryError):
        log.error("generator at %s: out of memory while loading", folder)
        return "it needs more memory than this machine has"
    log.error("generator at %s could not be loaded", folder, exc_info=exc)
    return "it could not be loaded (an unexpected error; the server log has the details)"


def _folder_problem(folder: Path) -> str | None:
    """None when ``folder`` passes the checks that read no weights, else why not."""
    from loomis.generator_config import check_model_folder

    try:
        check_model_folder(folder)
    except Exception as exc:  # noqa: BLE001 - a folder from outside: every failure is a reason
        return _load_problem(exc, folder)
    return None


def _offline() -> bool:
    from huggingface_hub import constants
    return bool(constants.HF_HUB_OFFLINE)


def _looks_like_path(value: str) -> bool:
    """A setting meant as a folder: absolute, ``~``/``.``-relative, with backslashes or
    more than one ``/``, or starting with a folder that exists here."""
    if value.startswith(("/", "~", ".")) or "\\" in value or value.endswith("/"):
        return True
    name = value.split("@", 1)[0]
    return name.count("/") != 1 or Path(name.split("/", 1)[0]).is_dir()


@dataclass
class _Slot:
    lock: threading.Lock = field(default_factory=threading.Lock)
    source: Source | None = None
    model: object | None = None      # the loaded Translator
    failure: str | None = None       # the ModelUnavailable message, once nothing could load


class ModelRegistry:
    """Resolves and loads each engine's generator once; safe to share between threads.

    Creating it checks the ``LOOMIS_*_MODEL`` settings (:meth:`check_settings`): a
    mistyped folder raises :class:`ModelSettingError` there, at start-up."""

    def __init__(self, engines: tuple[str, ...] = ENGINES) -> None:
        self._slots = {name: _Slot() for name in engines}
        self.check_settings()

    @property
    def engines(self) -> list[str]:
        return list(self._slots)

    def _slot(self, engine: str) -> _Slot:
        if engine not in self._slots:
            raise ValueError(f"unknown engine {engine!r}; choose from {', '.join(self._slots)}")
        return self._slots[engine]

    def check_settings(self) -> None:
        """Raise :class:`ModelSettingError` when a ``LOOMIS_*_MODEL`` setting of these
        engines names neither an existing folder nor a Hub id."""
        for engine in self._slots:
            self.requested(engine)

    @staticmethod
    def requested(engine: str) -> tuple[str | None, str | None, Path | None]:
        """``(hub_id, revision, local_folder)`` asked for by the defaults and environment.

        Raises :class:`ModelSettingError` for a setting that is neither an existing folder
        nor a Hub id (``org/name`` or ``org/name@revision``)."""
        hub_id, _ = DEFAULTS[engine]
        value = os.environ.get(env_var(engine), "").strip()
        if value:
            path = Path(value).expanduser()
            if path.is_dir():
                return None, None, path
            if path.exists():
                raise ModelSettingError(
                    f"{env_var(engine)}={value!r} is a file; it must name a model folder "
                    "(config.json and model.safetensors) or a Hub id like org/name")
            if _looks_like_path(value) or not _HUB_ID.match(value.split("@", 1)[0]):
                raise ModelSettingError(
                    f"{env_var(engine)}={value!r} names no existing folder and is not a Hub id "
                    f"(org/name or org/name@revision): correct it, or unset it to use "
                    f"{DEFAULTS[engine][0]}")
            hub_id = value
        revision = None
        if "@" in hub_id:
            hub_id, revision = hub_id.split("@", 1)
        return hub_id, revision, None

    def _find(self, engine: str) -> Source:
        hub_id, revision, local = self.requested(engine)
        if local is not None:
            problem = _folder_problem(local)
            if problem is None:
                return Source(engine, local, "local")
            return self._bundled(engine, hub_id, revision,
                                 f"the folder `{local}` set by {env_var(engine)}", problem,
                                 broken=True)
        from huggingface_hub import snapshot_download
        try:
            folder = Path(snapshot_download(hub_id, revision=revision, allow_patterns=_FILES))
        except Exception as exc:  # every "not reachable / not cached / not there" case
            return self._bundled(engine, hub_id, revision, f"Hub `{hub_id}`",
                                 _hub_problem(exc, hub_id, revision), broken=False)
        problem = _folder_problem(folder)
        if problem is None:
            return Source(engine, folder, "hub", hub_id, revision, commit=folder.name,
                          offline_cache=_offline())
        return self._bundled(engine, hub_id, revision, f"Hub `{hub_id}` @ `{folder.name}`",
                             problem, broken=True)

    @staticmethod
    def _bundled(engine: str, hub_id: str | None, revision: str | None, wanted: str,
                 reason: str, *, broken: bool) -> Source:
        """The bundled copy in place of ``wanted``, not used for ``reason`` (``broken``:
        a copy that exists but fails, which the Models tab shows as a problem)."""
        bundled = checkpoints_dir() / DEFAULTS[engine][1]
        problem = f"{wanted} is not used: {reason}." if broken else None
        if not (bundled / "model.safetensors").is_file():
            why = f"{wanted}: {reason}; no bundled copy at {bundled}"
            return Source(engine, None, "unavailable", hub_id, revision, fallback_reason=why,
                          wanted=wanted, problem=f"No copy can serve: {why}.")
        bundled_problem = _folder_problem(bundled)
        if bundled_problem is not None:
            why = (f"{wanted}: {reason}; the bundled copy at {bundled} cannot be used "
                   f"either: {bundled_problem}")
            return Source(engine, None, "unavailable", hub_id, revision, fallback_reason=why,
                          wanted=wanted, problem=f"No copy can serve: {why}.")
        return Source(engine, bundled, "bundled", hub_id, revision, fallback_reason=reason,
                      wanted=wanted, problem=problem and f"{problem} The bundled copy serves instead.")

    def resolve(self, engine: str) -> Source:
        """Where the engine's weights are (found once, then remembered; after a failed
        load, the copy serving instead)."""
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

    def _unavailable(self, engine: str, what: str, slot: _Slot) -> ModelUnavailable:
        if slot.failure is None:
            slot.failure = (f"The {engine} {what} is not available: {slot.source.fallback_reason}. "
                            f"Train it (see docs/training.md), put it under {checkpoints_dir()}, "
                            f"or point {env_var(engine)} at a Hub id or folder")
        return ModelUnavailable(slot.failure)

    def _load(self, engine: str, what: str, load):
        self.resolve(engine)
        slot = self._slot(engine)
        with slot.lock:
            if slot.model is not None:
                return slot.model
            if slot.failure is not None:          # failed before: not retried per request
                raise ModelUnavailable(slot.failure)
            source = slot.source
            if source.folder is None:
                raise self._unavailable(engine, what, slot)
            try:
                slot.model = load(source.folder)
                return slot.model
            except Exception as exc:  # noqa: BLE001 - weights from outside: remembered, not raised raw
                reason = _load_problem(exc, source.folder)
            if source.kind != "bundled":          # the copy asked for failed: the bundled one
                wanted = source.wanted or (f"the folder `{source.folder}` set by {env_var(engine)}"
                                           if source.kind == "local" else f"Hub `{source.hub_id}`")
                slot.source = self._bundled(engine, source.hub_id, source.revision, wanted,
                                            reason, broken=True)
                if slot.source.folder is not None:
                    try:
                        slot.model = load(slot.source.folder)
                        return slot.model
                    except Exception as exc:  # noqa: BLE001
                        source, reason = slot.source, _load_problem(exc, slot.source.folder)
            if slot.source.folder is not None:    # the bundled copy failed to load
                before = (f"{source.wanted}: {source.fallback_reason}; " if source.wanted else "")
                why = f"{before}the bundled copy at {source.folder} could not be loaded: {reason}"
                slot.source = replace(source, folder=None, kind="unavailable", fallback_reason=why,
                                      problem=f"No copy can serve: {why}.")
            raise self._unavailable(engine, what, slot)

    def info(self, engine: str) -> dict:
        """Source, config, model-card metrics and problem of an engine, for the Models tab.

        ``problem`` is None, or a plain sentence when the copy asked for is broken or no
        copy can serve. Never raises for a broken folder (a bad setting is reported too)."""
        out = {"engine": engine, "source": None, "config": None, "metrics": None, "problem": None}
        try:
            source = self.resolve(engine)
        except ModelSettingError as exc:
            out["problem"] = f"{exc}."
            return out
        out["source"] = source
        out["problem"] = source.problem
        if source.folder is not None:
            config = source.folder / "config.json"
            card = source.folder / "README.md"
            try:
                out["config"] = json.loads(config.read_text()) if config.is_file() else None
            except (OSError, ValueError):
                out["problem"] = out["problem"] or f"{config} is not valid JSON."
            if not isinstance(out["config"], dict):
                out["config"] = None
            try:
                out["metrics"] = card_metrics(card.read_text()) if card.is_file() else None
            except (OSError, ValueError):
                out["metrics"] = None
        return out


def card_metrics(card: str) -> str | None:
    """The "## Evaluation" section of a model card (markdown), or None when it has none."""
    match = re.search(r"^## Evaluation\s*\n(.*?)(?=^## |\Z)", card, flags=re.S | re.M)
    if not match:
        return None
    return match.group(1).strip() or None


def card_summary(info: dict) -> dict:
    """One line about an engine's model for a reader (where it comes from, what it was
    trained on, its real-photo figure), from :meth:`ModelRegistry.info`; ``problem`` is a
    plain sentence when the model could not be used."""
    source = info.get("source")
    parts = [f"**Source:** {source.describe()}" if source is not None else "**Source:** unknown"]
    folder = getattr(source, "folder", None)
    record = folder / "training.json" if folder is not None else None
    if record is not None and record.is_file():
        try:
            data = str(json.loads(record.read_text()).get("data", ""))
        except (OSError, ValueError):
            data = ""
        if data:
            parts.append(f"**Trained on:** {_trained_on(data)}")
    figure = _real_photo_figure(info.get("metrics") or "")
    if figure:
        parts.append(f"**On real photos:** {figure}")
    return {"line": " · ".join(parts), "problem": info.get("problem")}


def _trained_on(data: str) -> str:
    """A training record's data description, shortened to what it was trained on."""
    portraits = re.search(r"the (\d+) training portraits of (\d+) ([^,(]+)", data)
    rendered = re.search(r"(\d+) rendered heads", data)
    if not portraits:
        return data if len(data) <= 160 else data[:157].rsplit(" ", 1)[0] + "…"
    text = f"{portraits.group(1)} of {portraits.group(2)} {portraits.group(3).strip()}"
    return text + (f", and {rendered.group(1)} rendered heads" if rendered else "")


def _real_photo_figure(evaluation: str) -> str | None:
    """The shipped model's first bold row under the card's real-photo heading, as
    "column value" pairs for its headline columns."""
    real = evaluation.split("**Real photos**", 1)
    if len(real) < 2:
        return None
    lines = [ln for ln in real[1].splitlines() if ln.startswith("|")]
    if len(lines) < 3:
        return None
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    for row in lines[2:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        if cells and cells[0].startswith("**"):
            wanted = [i for i, h in enumerate(header)
                      if h in ("F1", "faces found") and i < len(cells)]
            pairs = [f"{header[i]}: {cells[i].replace('**', '')}" for i in wanted]
            return f"{cells[0].replace('**', '')}: " + ", ".join(pairs) + " (docs/quality.md)" if pairs else None
    return None
