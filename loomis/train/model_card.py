"""Model cards for generator folders: what the model does, how it was trained, how good it is.

A Hub model folder is only reproducible when its README.md says the exact command that
trained it, on what data, and numbers anyone can re-measure. The training record lives
next to the weights in ``training.json`` (written by whoever trains the model)::

    {"command": "python train/pix2pix.py --data /work/data/synth256 ...",
     "data": "3000 synthetic pairs at 256 px: make_dataset.py synthetic --n 3000 --seed 1",
     "model": "pix2pix",                      # optional: pix2pix | cyclegan
     "train_time": "5 h on 2 CPU cores", ...} # any further keys are listed as they are

and the measured numbers come from ``benchmarks/quality.py`` (its ``--update-cards`` calls
:func:`write_model_card` for every shipped folder with the report it just measured).
The card is written whole each time (the folder's README.md is generated, not edited).
"""
from __future__ import annotations

import json
from pathlib import Path

__all__ = ["TrainingRecordError", "read_training_record", "model_family", "render_model_card",
           "write_model_card"]

TRAINING_FILE = "training.json"
_DOMAIN_TEXT = {"photo": "portrait photo", "drawing": "Loomis construction drawing"}


class TrainingRecordError(ValueError):
    """A training.json that cannot be read or lacks the training command."""


def read_training_record(folder: Path) -> dict | None:
    """The folder's ``training.json`` (``None`` when there is none)."""
    path = Path(folder) / TRAINING_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise TrainingRecordError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(record, dict) or not str(record.get("command", "")).strip():
        raise TrainingRecordError(f'{path} must be a JSON object with a "command" string '
                                  "(the exact command that trained the model)")
    return record


def model_family(folder: Path, config: dict, record: dict | None) -> str:
    """pix2pix or cyclegan: from the training record, else the folder name, else the
    architecture (U-Nets are pix2pix's, ResNets CycleGAN's by default)."""
    if record and record.get("model") in ("pix2pix", "cyclegan"):
        return record["model"]
    name = Path(folder).name.lower()
    for family in ("pix2pix", "cyclegan"):
        if family in name:
            return family
    return "pix2pix" if str(config.get("arch", "")).startswith("unet") else "cyclegan"


def _weights_info(folder: Path) -> tuple[int, str, float]:
    """(parameters, dtype, megabytes) of the folder's model.safetensors."""
    from safetensors import safe_open

    path = Path(folder) / "model.safetensors"
    n, dtypes = 0, set()
    with safe_open(str(path), framework="pt") as f:
        for k in f.keys():
            t = f.get_slice(k)
            shape = t.get_shape()
            count = 1
            for s in shape:
                count *= s
            dtypes.add(t.get_dtype())
            if "running_" not in k and "num_batches" not in k:
                n += count
    return n, "/".join(sorted(dtypes)), path.stat().st_size / 1e6


def _fmt(v, digits: int = 3) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def pose_cells(result: dict, empty: str = "–") -> tuple[str, str]:
    """A benchmark result's "faces found / n" and "yaw / pitch / roll" pose-error cells
    (``empty`` where it has none): the engine's rows and the read-back of made photos."""
    found = f"{result['faces_found']}/{result['n']}" if "faces_found" in result else empty
    mae = result.get("pose_mae", {}).get("all")
    pose = f"{mae['yaw']:.1f} / {mae['pitch']:.1f} / {mae['roll']:.1f}" if mae else empty
    return found, pose


def _cell(stat: dict | None, digits: int = 3) -> str:
    """A benchmark statistic ``{"mean", "median", ...}`` as "mean / median"."""
    if not stat or stat.get("mean") is None:
        return "–"
    return f"{stat['mean']:.{digits}f} / {stat['median']:.{digits}f}"


def _share(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.0f}%"


def _real_evaluation(name: str, target: str, real: dict) -> list[str]:
    """This model's rows of the benchmark's real-photo section, beside the baselines."""
    st = real["settings"]
    where = (f"{st['n']} held-out real portraits of `{Path(st['folder']).name}` (photos no "
             "training run reads: `loomis.train.autopairs.held_out`)")
    out = [f"**Real photos** ({where}; `{st.get('command', 'python -m benchmarks.quality')}`), "
           "every picture through `loomis.pipeline` as the app runs it; the baselines, and "
           "any model named on the command line (such as this one's predecessor), beside it"
           + (" (`NAME@REV`: that generator as shipped at git revision REV, checked out beside "
              "the repository with `git worktree add ../loomis-REV REV`)"
              if any("@" in k for k in st.get("generators", {})) else "") + ":", ""]
    if target == "drawing":
        table = real["photo_to_drawing"]
        mine = [k for k in table if k.startswith(f"{name}, ")]
        if not mine:
            return []
        out += ["Line F1 at 2 px against the geometric engine's construction of the same photo "
                "(mean / median); heads drawn where the engine finds them:", "",
                "| method | precision | recall | F1 | heads = engine's | ms/img |",
                "|---|---|---|---|---|---|"]
        for k, r in table.items():
            if k in mine or r["group"] in ("baseline", "compared"):
                bold = "**" if k in mine else ""
                out.append(f"| {bold}{k}{bold} | {_cell(r['precision'])} | {_cell(r['recall'])} "
                           f"| {bold}{_cell(r['f1'])}{bold} | {_share(r.get('heads_as_engine'))} "
                           f"| {r['ms_per_image']:.0f} |")
        return out + [""]
    kinds = real["drawing_to_photo"]
    if not any(name in rows for rows in kinds.values()):
        return []
    out += ["From the geometric engine's construction of each photo: how often a face "
            f"detector finds a face (score ≥ {st['face_score_min']}), how often the yaw read "
            f"back lies within {st['yaw_tolerance_deg']:.0f}° of the drawing's, and L1 / SSIM "
            "against the real photo (mean / median):", ""]
    for kind, rows in kinds.items():
        out += [f"*Input: {kind}*", "",
                "| method | faces found | yaw within | L1 ↓ | SSIM ↑ | ms/img |",
                "|---|---|---|---|---|---|"]
        for k, r in rows.items():
            if k == name or r["group"] in ("baseline", "reference", "compared"):
                bold = "**" if k == name else ""
                ms = "–" if r.get("ms_per_image") is None else f"{r['ms_per_image']:.0f}"
                out.append(f"| {bold}{k}{bold} | {bold}{_share(r['face_found'])}{bold} | "
                           f"{_share(r['yaw_within'])} | {_cell(r['l1'], 4)} | "
                           f"{_cell(r['ssim'])} | {ms} |")
        out.append("")
    return out


def _evaluation(name: str, config: dict, report: dict) -> list[str]:
    """This model's rows from the benchmark report, beside the baselines for its direction:
    real photos first, then the rendered heads."""
    results, settings = report.get("results", {}), report.get("settings", {})
    direction = config.get("direction", "AtoB")
    target = config.get("domain_b", "drawing") if direction == "AtoB" else config.get("domain_a", "photo")
    real = _real_evaluation(name, target, report["real"]) if report.get("real") else []
    if name not in results:
        return real or ["Not measured yet: run `python -m benchmarks.quality --update-cards`."]
    real += ["**Rendered heads**, second:", ""] if real else []
    mine = results[name]

    def own(k: str, v: dict) -> bool:   # untrained twins and ablations: only this model's
        if k.startswith("untrained"):
            return k == f"untrained ({name} config)"
        return v["group"] != "ablation" or k.startswith(f"{name}, ")

    rows = [(name, mine)] + [(k, v) for k, v in results.items()
                             if k != name and v["target"] == target and v["group"] != "shipped"
                             and own(k, v)]
    rows += [(k, v) for k, v in results.items()
             if k != name and v["target"] == target and v["group"] == "shipped"]
    out = real + [f"Measured with `{settings['command']}` on the project's held-out synthetic set: "
           f"{settings['n']} rendered heads (seed {settings['seed']}, which no training run "
           f"uses) at {settings['size']}², through `loomis.train.inference.Translator` "
           f"({settings['runtime']} runtime"
           + ("; drawings with the mirror pass: the mirror image is translated too and the "
              "lines of both are kept, `Translator(mirror=...)`" if target == "drawing" else "")
           + "). Baselines and the other shipped generators for the same direction are "
           "shown for comparison.", ""]
    if target == "drawing":
        out += ["Line precision / recall / F1 at 2-pixel tolerance (line pixels are those "
                "darker than mid-grey):", "",
                "| method | precision | recall | F1 | ms/img |", "|---|---|---|---|---|"]
        for k, r in rows:
            bold = "**" if k == name else ""
            out.append(f"| {bold}{k}{bold} | {_fmt(r['precision'])} | {_fmt(r['recall'])} | "
                       f"{bold}{_fmt(r['f1'])}{bold} | {r['ms_per_image']:.0f} |")
        buckets = [b for b in mine.get("buckets", {}) if b != "all"]
        if buckets:
            head = " | ".join(f"{b} (n={mine['buckets'][b]['n']})" for b in buckets)
            out += ["", "F1 per pose bucket (frontal |yaw| < 20°, three-quarter 20–60°, "
                    "profile > 60°; tilted |pitch| > 15°), mean ± standard error:", "",
                    f"| method | {head} |", "|---" * (len(buckets) + 1) + "|"]
            for k, r in rows:
                cells = [f"{_fmt(r['buckets'][b]['f1'])} ± {_fmt(r['buckets'][b]['se'], 2)}"
                         if b in r.get("buckets", {}) else "–" for b in buckets]
                out.append(f"| {k} | " + " | ".join(cells) + " |")
    else:
        out += ["L1 / PSNR / SSIM against the held-out photo, and how often the pose "
                "estimator finds a face in the made photo (with its mean absolute pose error "
                "against the drawing's pose). The drawing does not decide colours, light or "
                "background: the reference rows show what a perfect answer to the drawing "
                "scores.", "",
                "| method | L1 ↓ | PSNR (dB) ↑ | SSIM ↑ | faces read back | pose MAE yaw/pitch/roll (°) | ms/img |",
                "|---|---|---|---|---|---|---|"]
        for k, r in rows:
            bold = "**" if k == name else ""
            found, pose = pose_cells(r)
            out.append(f"| {bold}{k}{bold} | {_fmt(r['l1'], 4)} | {_fmt(r['psnr'], 2)} | "
                       f"{bold}{_fmt(r['ssim'])}{bold} | {found} | {pose} | "
                       f"{_fmt(r['ms_per_image'], 0)} |")
    return out


def render_model_card(folder: Path, report: dict | None = None) -> str:
    """The full README.md of a generator folder (front matter, use, model, training,
    evaluation, limitations).

    Raises :class:`TrainingRecordError` when the training record mentions the benchmark's
    held-out seed: numbers measured on training data must not be published as held-out.
    """
    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text())
    record = read_training_record(folder)
    if record is not None and report is not None and "settings" in report:
        seed = str(report["settings"]["seed"])
        if any(seed in str(v) for v in record.values()):
            raise TrainingRecordError(
                f"{folder / TRAINING_FILE} mentions seed {seed}, the benchmark's held-out "
                "seed: a model trained on it cannot be measured on it. Retrain with another seed")
    family = model_family(folder, config, record)
    direction = config.get("direction", "AtoB")
    a, b = config.get("domain_a", "photo"), config.get("domain_b", "drawing")
    source, target = (a, b) if direction == "AtoB" else (b, a)
    params, dtype, mb = _weights_info(folder)
    name = folder.name
    what = f"{_DOMAIN_TEXT.get(source, source)} → {_DOMAIN_TEXT.get(target, target)}"
    paper = ("pix2pix (Isola et al. 2017, paired, conditional GAN + L1)" if family == "pix2pix"
             else "CycleGAN (Zhu et al. 2017, unpaired, cycle-consistency)")
    lines = ["---", "license: mit", "library_name: loomis", "pipeline_tag: image-to-image",
             "tags:", "- image-to-image", f"- {family}", "- loomis", "- loomis-head", "---", "",
             f"# {name}", "",
             f"A {what} generator of [Loomis](https://github.com/loomis-art/loomis), trained as "
             f"{paper} on the data below.", "",
             "## Use", "", "```python", "from loomis.train.inference import Translator",
             "from loomis import pipeline", "",
             f'translate = Translator.from_pretrained("checkpoints/{name}")  # or its Hub id',
             *(['# every face of a photo cut to the framing the generator was trained on,',
                "# translated, the 3D construction fitted to its lines, drawn back (the app's path)",
                f'drawing = pipeline.photo_to_drawing("portrait.jpg", "{name}", translator=translate)',
                "drawing.image, drawing.heads  # the picture; each head's box, yaw, pitch, roll",
                'raw = pipeline.photo_to_drawing("portrait.jpg", "' + name + '", '
                "translator=translate, fit=False)"]
               if target == "drawing" else
               ["# the drawn head found by its lines, cut to the generator's framing, translated",
                "# and put back at the drawing's size (the app's path)",
                'photo = pipeline.sketch_to_photo("sketch.png", translate)']), "```", "",
             "Weights load strictly from `model.safetensors` (never pickle); `config.json` "
             "rebuilds the network.", "",
             "## Model", "",
             "| architecture | width (ngf) | norm | dropout | training size | parameters | weights |",
             "|---|---|---|---|---|---|---|",
             f"| {config.get('arch')} | {config.get('ngf')} | {config.get('norm')} | "
             f"{config.get('dropout')} | {config.get('image_size')}² | {params / 1e6:.2f} M | "
             f"{mb:.1f} MB {dtype.lower()} |", "",
             "## Training", ""]
    if record is None:
        lines += [f"Not recorded: this folder has no `{TRAINING_FILE}` with the command that "
                  "trained it.", ""]
    else:
        lines += ["Command:", "", "```bash", record["command"].strip(), "```", ""]
        if record.get("data"):
            lines += [f"Data: {record['data']}", ""]
        extra = {k: v for k, v in record.items() if k not in ("command", "data", "model")}
        lines += [f"- {k.replace('_', ' ')}: " + (", ".join(f"{sk}={sv}" for sk, sv in v.items())
                                                   if isinstance(v, dict) else f"{v}")
                  for k, v in extra.items()]
        if extra:
            lines.append("")
    lines += ["## Evaluation", ""]
    lines += _evaluation(name, config, report) if report else [
        "Not measured yet: run `python -m benchmarks.quality --update-cards`."]
    data = str(record.get("data", "")) if record else ""
    lines += ["", "## Limitations", ""]
    if "portraits-pd" in data or "real" in data.lower():
        lines.append("- The real photos it was trained on are official U.S. Congress portraits "
                     "(public domain): near-frontal, studio-lit, plain backgrounds, mostly "
                     "older men in suits. Rendered heads in the mix give it turned and tilted "
                     "poses, but expect less on other people, other light and strong turns.")
    else:
        lines.append("- Trained on procedural renders (loomis.train.synthetic) only: on real "
                     "portraits expect far lower quality (the real-photo rows above).")
    lines.append("- It works on one face at a time, framed as in training "
                 "(`loomis.pipeline.head_square`); run it through `loomis.pipeline` rather "
                 "than on a whole photo. For photo → drawing the geometric engine "
                 "(`pipeline.photo_to_drawing(photo)`) is the reference.")
    if target == "photo":
        lines.append("- A construction drawing fixes the head's pose and proportions, not its "
                     "skin, hair, light or background. Trained with an L1 term, a generator "
                     "learns the average of the photos a drawing allows, so its photos are "
                     "soft and plain; the reference rows above show what a perfect answer "
                     "to the drawing scores.")
    if family == "cyclegan":
        lines.append("- CycleGAN learns from unpaired images; a construction drawing differs "
                     "from a photo in geometry, not only texture, which cycle-consistency "
                     "does not enforce well. Compare with the pix2pix rows above.")
    return "\n".join(lines) + "\n"


def write_model_card(folder: Path, report: dict | None = None) -> Path:
    """Write ``folder/README.md`` (see :func:`render_model_card`) and return its path."""
    path = Path(folder) / "README.md"
    path.write_text(render_model_card(folder, report))
    return path
