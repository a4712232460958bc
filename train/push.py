"""Push a generator folder to the Hugging Face Hub (also the retry command after a failed push).

    python train/push.py RUN_DIR/generator ORG/NAME

The token comes from HF_TOKEN or the user's ``huggingface-cli login``. The folder is
checked first: config.json, model.safetensors, model.onnx and README.md must be there and
the weights must load back through ``Generator.from_pretrained`` (strict), so a broken
folder never reaches the Hub.
"""
from __future__ import annotations

import sys

from loomis.train.hub import PushError, push_folder


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
