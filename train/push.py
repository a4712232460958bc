"""Push a generator folder to the Hugging Face Hub (also the retry command after a failed push).

    python train/push.py RUN_DIR/generator ORG/NAME

The token comes from HF_TOKEN or the user's ``huggingface-cli login``. The folder is
checked first: config.json, model.safetensors, model.onnx and README.md must be there and
the weights must load back through ``Generator.from_pretrained`` (strict), so a broken
folder never reaches the Hub.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path


from loomis.nets import Generator  # noqa: E402

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


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder")
    p.add_argument("repo", metavar="ORG/NAME")
    args = p.parse_args(argv)
    try:
        print(push_folder(args.folder, args.repo))
    except PushError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # network / auth
        print(f"push failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
