"""Generator folders to the Hugging Face Hub: the check before a push, and the push.

A folder is pushed only when config.json, model.safetensors, model.onnx and README.md are
there and the weights load back through ``Generator.from_pretrained`` (strict), so a
broken folder never reaches the Hub. ``train/push.py`` is the command.
"""
from __future__ import annotations

import os
from pathlib import Path

from loomis.train.nets import Generator

REQUIRED = ("config.json", "model.safetensors", "model.onnx", "README.md")


class PushError(ValueError):
    """A folder that is not a complete generator folder."""


def check_folder(folder: str | os.PathLike) -> Generator:
    """The generator the folder holds; raises :class:`PushError` naming what is missing."""
    folder = Path(folder)
    missing = [f for f in REQUIRED if not (folder / f).is_file()]
    if missing:
        raise PushError(f"{folder} is not a complete generator folder: missing {', '.join(missing)}")
    return Generator.from_pretrained(str(folder))


def repo_for(repo: str, folder_name: str) -> str:
    """CycleGAN pushes two generators: generator_A goes to ORG/NAME, generator_B to ORG/NAME-B."""
    return f"{repo}-B" if folder_name == "generator_B" else repo


def push_folder(folder: str | os.PathLike, repo_id: str, token: str | None = None) -> str:
    """Create the model repo if needed and upload the folder; returns the repo URL."""
    from huggingface_hub import HfApi

    if repo_id.count("/") != 1:
        raise PushError(f"give the Hub repo as ORG/NAME, got {repo_id!r}")
    check_folder(folder)
    api = HfApi(token=token or os.environ.get("HF_TOKEN"))
    url = api.create_repo(repo_id, repo_type="model", exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                      commit_message="Upload Loomis generator")
    return str(url)
