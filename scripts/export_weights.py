"""Export trained runs to the shipped weights, with a model card measured on the held-out set.

For each task (a run folder ``runs/weights/<task>`` written by scripts/train_shipped_weights.sh,
or another folder given as ``TASK=RUN_DIR``):

1. take the final ``model.safetensors`` if the run finished, else ``checkpoints/last.ckpt``
   (loaded with ``torch.load(weights_only=True)``; the EMA weights when the run kept them);
2. write ``src/resyn/weights/<task>.safetensors`` (``save_model`` with the run's facts in
   ``info``);
3. evaluate it and the baseline (MATLAB bicubic for SR, the noisy input for denoising) with
   ``resyn eval`` on data/test/ReSynDemo (photos the model never saw);
4. write the model card ``src/resyn/weights/<task>.md`` and the index README.md.

``--gpu-runs DIR`` exports every run folder ``DIR/<task>`` (``scripts/gpu_train.sh`` writes them
under ``$OUT/runs``), each under the same rule.

Blind models (``denoise``, ``jpeg``) are measured at fixed levels (``EVAL_LEVELS``: sigma 15 /
25 / 50, quality 10 / 30 / 50); their score is the mean PSNR over the levels.

``--unseen-only TASK...`` only re-measures the shipped weights on data/test/ReSynUnseen (reported
only: nothing chooses by it) and updates that table in the card.

``--best`` takes the run's ``best.safetensors`` (best validation PSNR; the card says the
choice was made on the validation set) instead of its last state. The shipped file is replaced
only when the new weights score better on the held-out
set than the ones already shipped, i.e. only when they score better (PSNR-Y for SR and JPEG, PSNR
for denoising; a tie keeps the shipped file); ``--force`` replaces them anyway.

    .venv/bin/python scripts/export_weights.py sr-x2 sr-x4 denoise-25
    .venv/bin/python scripts/export_weights.py sr-x2=runs/weights/sr-x2-s3
    .venv/bin/python scripts/export_weights.py --gpu-runs FILES_AT/runs
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from resyn.data import layout
from resyn.degrade import parse_task
from resyn.io.atomic import atomic_write_text
from resyn.models import build_model, save_model
from resyn.models.weights import load_model, read_metadata

ROOT = Path(__file__).resolve().parents[1]

WEIGHTS = ROOT / "src" / "resyn" / "weights"
TEST_SET = ROOT / "data" / "test" / "ReSynDemo"
#: Reported only: nothing (training, checkpoint choice, the keep-or-replace rule) looks at it.
UNSEEN_SET = ROOT / "data" / "test" / "ReSynUnseen"
TARGETS = {
    "sr-x2": "+1.5 dB PSNR-Y over bicubic on ReSynDemo (issue 7); Set5 toward 37.0 dB (issue 17)",
    "sr-x3": ">= +1.5 dB PSNR-Y over bicubic on Set5 (issue 17)",
    "sr-x4": "+0.8 dB PSNR-Y over bicubic on ReSynDemo (issue 7); Set5 toward 31.0 dB (issue 17)",
    "denoise-25": ">= 29 dB PSNR (RGB) on ReSynDemo (issue 7)",
    "denoise": "CBSD68 (color) sigma 25 >= 30.0 dB, sigma 50 >= 26.5 dB PSNR (issue 17)",
    "jpeg": "classic5 (gray) q10 >= +1.5 dB over the JPEG input; LIVE1 or CBSD68 (color) q10 "
    ">= +1.2 dB (issue 17)",
}
#: The fixed levels a blind model is measured at (and compared with the shipped one by).
EVAL_LEVELS = {
    "denoise": ("denoise-15", "denoise-25", "denoise-50"),
    "jpeg": ("jpeg-q10", "jpeg-q30", "jpeg-q50"),
}


def levels(task: str) -> tuple[str, ...]:
    """The task names a model for ``task`` is measured at: its fixed levels if blind."""
    return EVAL_LEVELS.get(task, (task,))


def score_key(task: str) -> str:
    """PSNR-Y for SR and JPEG (the presets' validation metric), PSNR on RGB for denoising."""
    return "psnr" if parse_task(task).kind == "denoise" else "psnr_y"


def evaluate_levels(models: dict[str, Path], task: str, test_set: Path = TEST_SET) -> dict:
    """``evaluate`` at every level of ``task``; rows named ``MODEL`` (fixed task) or
    ``MODEL @ LEVEL`` (blind task)."""
    names = levels(task)
    out: dict[str, dict[str, str]] = {}
    for level in names:
        rows = evaluate(models, level, test_set)
        out |= {(k if len(names) == 1 else f"{k} @ {level}"): v for k, v in rows.items()}
    return out


def mean_score(results: dict, name: str, task: str) -> float:
    """Mean of ``score_key`` over the rows of model ``name`` (one per level)."""
    key = score_key(task)
    rows = [r for k, r in results.items() if k == name or k.startswith(f"{name} @ ")]
    return sum(float(r[key]) for r in rows) / len(rows)


def load_run(run: Path, best: bool = False) -> tuple[torch.nn.Module, dict, int, str]:
    meta = json.loads((run / "run.json").read_text())
    task = parse_task(meta["config"]["task"])
    if best:
        path = run / "best.safetensors"
        if not path.is_file():
            raise SystemExit(f"{run}: no best.safetensors yet (it is written at validation)")
        info = read_metadata(path)["info"]
        step = int(info["step"])
        source = (
            f"the run's best validation checkpoint (iteration {step:,}, {info['val_psnr']:.2f} dB "
            f"on {Path(meta['data']['val']).name}, checked every {meta['config']['val']['every']:,} "
            "iterations; that set is the held-out set, so this is a choice among checkpoints "
            "made on it)"
        )
        return load_model(path).eval(), meta, step, source
    final = run / "model.safetensors"
    if final.is_file():
        model = load_model(final)
        end = meta.get("final") or {}
        step = int(end.get("step", meta["config"]["iterations"]))
        if end.get("stopped_by") == "max_minutes":
            how = f"stopped by --max-minutes {end['max_minutes']:g} at iteration {step:,}"
            return model, meta, step, f"final weights ({how}; EMA: {meta['config']['ema_decay']})"
        return model, meta, step, "final weights (run finished)"
    ckpt_path = run / "checkpoints" / "last.ckpt"
    if not ckpt_path.is_file():
        raise SystemExit(f"{run}: no model.safetensors and no checkpoints/last.ckpt yet")
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    state = ckpt["state_dict"]
    prefix = "ema." if any(k.startswith("ema.") for k in state) else "model."
    weights = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    scale = task.scale if task.kind == "sr" else 1
    model = build_model(
        meta["model"]["name"],
        scale=scale,
        in_channels=1 if task.gray else 3,
        **meta["model"].get("args", {}),
    )
    model.load_state_dict(weights)
    step = int(ckpt.get("global_step", 0))
    return model.eval(), meta, step, f"checkpoint at iteration {step} (run not finished)"


def wall_time(run: Path, step: int) -> float:
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    times = [float(r["wall_time"]) for r in rows if r["wall_time"] and int(r["step"]) <= step]
    return max(times) if times else 0.0


def evaluate(
    models: dict[str, Path], task: str, test_set: Path = TEST_SET
) -> dict[str, dict[str, str]]:
    """Mean PSNR/SSIM (RGB and Y) of the baseline and each named weights file on ``test_set``."""
    with tempfile.TemporaryDirectory() as tmp:
        kind = parse_task(task).kind
        baseline = {"sr": "Bicubic=bicubic", "denoise": "Noisy input=input"}.get(
            kind, "JPEG input=input"
        )
        # this checkout's resyn, whichever environment runs the script
        cmd = [sys.executable, "-m", "resyn.cli.main", "eval", "--model", baseline]
        for name, path in models.items():
            cmd += ["--model", f"{name}={path}"]
        cmd += ["--data", f"{test_set.name}={test_set}", "--task", task, "-o", tmp]
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join(
                [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
        )
        subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, env=env)
        rows = list(csv.DictReader((Path(tmp) / "summary.csv").open()))
    return {r["model"]: {k: r[k] for k in ("psnr", "ssim", "psnr_y", "ssim_y", "n")} for r in rows}


def parse_target(arg: str, runs: Path) -> tuple[str, Path]:
    """``TASK`` (run folder ``runs/TASK``) or ``TASK=RUN_DIR``."""
    task, sep, folder = arg.partition("=")
    return task, (Path(folder) if sep else runs / task)


def main() -> None:
    global WEIGHTS
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("tasks", nargs="*", metavar="TASK[=RUN_DIR]")
    parser.add_argument(
        "--gpu-runs",
        type=Path,
        help="export every run folder DIR/<task> (scripts/gpu_train.sh's $OUT/runs)",
    )
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "weights")
    parser.add_argument(
        "--force", action="store_true", help="replace shipped weights even if the new score lower"
    )
    parser.add_argument(
        "--best",
        action="store_true",
        help="export the run's best.safetensors (best validation PSNR) instead of its last state",
    )
    parser.add_argument(
        "--unseen-only",
        action="store_true",
        help="only re-measure the shipped TASK weights on ReSynUnseen and update their card",
    )
    parser.add_argument(
        "--weights-dir",
        type=Path,
        default=WEIGHTS,
        help="where the shipped weights and cards are (default: the package's)",
    )
    args = parser.parse_args()
    WEIGHTS = args.weights_dir
    if args.gpu_runs is not None:
        found = sorted(p for p in args.gpu_runs.iterdir() if (p / "run.json").is_file())
        args.tasks += [f"{p.name}={p}" for p in found]
    if not args.tasks:
        parser.error("name at least one TASK[=RUN_DIR] (or --gpu-runs DIR)")
    if args.unseen_only:
        for arg in args.tasks:
            refresh_unseen(parse_target(arg, args.runs)[0])
        return
    WEIGHTS.mkdir(parents=True, exist_ok=True)
    for arg in args.tasks:
        task_name, run = parse_target(arg, args.runs)
        model, meta, step, source = load_run(run, best=args.best)
        if parse_task(meta["config"]["task"]).name != parse_task(task_name).name:
            raise SystemExit(f"{run} trained {meta['config']['task']}, not {task_name}")
        seconds = wall_time(run, step)
        cfg = meta["config"]
        stage = {
            "preset": meta["preset"],
            "iterations": step,
            "planned_iterations": cfg["iterations"],
            "wall_time_s": round(seconds, 1),
            "patch": cfg["patch"],
            "lr": cfg["optim"]["lr"],
            "milestones": cfg["sched"]["milestones"],
            "reschedules": meta.get("reschedules", []),
            "device": device_text(meta["hardware"]),
            "source": source,
            "data": train_data(meta),
        }
        init = meta["model"].get("init")
        if init:
            what = f"started from {Path(init['path']).name} (sha256 {init['sha256'][:12]}"
            if init.get("partial"):
                what += f"; --init-partial: {init['loaded']} tensors loaded, skipped: "
                what += ", ".join(x.split(":")[0] for x in init["skipped"]) or "none"
            stage["source"] = f"{what}); {source}"
        stages = [*earlier_stages(init), stage] if init else [stage]
        info = {
            "task": task_name,
            "preset": meta["preset"],
            "iterations": sum(st["iterations"] for st in stages),
            "wall_time_s": round(sum(st["wall_time_s"] for st in stages), 1),
            "hardware": meta["hardware"],
            "batch": meta["batch"],
            "patch": cfg["patch"],
            "lr": cfg["optim"]["lr"],
            "stages": stages,
            "training_sets": sorted({stage_data(st)["train"] for st in stages}),
            "source": source,
        }
        target = WEIGHTS / f"{task_name}.safetensors"
        fresh = save_model(model, WEIGHTS / f".{task_name}.new.safetensors", info=info)
        name = f"RWKV-IR light ({task_name})"
        models = {name: fresh} | ({"shipped": target} if target.is_file() else {})
        try:
            results = evaluate_levels(models, task_name)
        except BaseException:
            fresh.unlink(missing_ok=True)
            raise
        key = score_key(task_name)
        new_score = mean_score(results, name, task_name)
        if "shipped" in models:
            old_score = mean_score(results, "shipped", task_name)
            results = {k: v for k, v in results.items() if not k.startswith("shipped")}
            print(f"{task_name}: {key} {new_score:.4f} (new) vs {old_score:.4f} (shipped)")
            if new_score <= old_score and not args.force:
                fresh.unlink()
                print(f"{task_name}: kept the shipped weights (--force replaces them)")
                continue
        fresh.replace(target)
        unseen = (
            evaluate_levels({name: target}, task_name, UNSEEN_SET) if UNSEEN_SET.is_dir() else {}
        )
        card = model_card(task_name, meta, info, results, target, unseen)
        atomic_write_text(WEIGHTS / f"{task_name}.md", card)
        print(card)
    write_index()


def earlier_stages(init: dict) -> list[dict]:
    """The stages behind the weights a run started from (``--init``), oldest first."""
    info = init.get("info", {})
    if "stages" in info:
        return list(info["stages"])
    if info.get("iterations") is None:
        return []  # not a resyn training's export: the stage's source names the file
    keys = ("preset", "iterations", "wall_time_s", "patch", "lr", "source")
    stage = {k: info.get(k) for k in keys} | {"sha256": init.get("sha256")}
    if info.get("hardware"):
        stage["device"] = device_text(info["hardware"])
    return [stage]


#: The training set of the stages exported before each stage recorded its own (stages 1-3 of
#: the shipped SR weights and the denoising run all trained on this build).
BUNDLED_BUILD = {
    "train": "runs/resyn-train",
    "images": 12,
    "sources": ["data/train/real", "data/train/synthetic"],
    "center": 12.6,
}
#: What the source folders of a build are, for the card.
SOURCE_TEXT = {
    "data/train": "the bundled pools",
    "runs/pool": "512-px tiles of the originals of data/train's sources "
    "(scripts/build_training_pool.py)",
}


def train_data(meta: dict) -> dict:
    """The run's training set: folder, image count, and the build's sources and centre (from
    the definition ``resyn dataset build`` records, ``layout.CONFIG``) when the folder has one."""
    train = Path(meta["data"]["train"])
    facts: dict = {"train": train.as_posix(), "images": meta["data"]["train_images"]}
    built = (train if train.is_absolute() else ROOT / train) / layout.CONFIG
    if built.is_file():
        spec = json.loads(built.read_text())
        facts["sources"] = [
            Path(os.path.relpath((built.parent / src["path"]).resolve(), ROOT)).as_posix()
            for src in spec["sources"]
        ]
        facts["center"] = spec["options"].get("center")
    return facts


def stage_data(stage: dict) -> dict:
    return stage.get("data") or BUNDLED_BUILD


def data_text(facts: dict) -> str:
    text = f"{facts['images']} training images in {facts['train']}"
    if facts.get("sources"):
        parents = sorted({Path(src).parent.as_posix() for src in facts["sources"]})
        what = ", ".join(SOURCE_TEXT.get(p, p) for p in parents)
        text += f" (`resyn dataset build` of {what}: {', '.join(facts['sources'])}"
        if facts.get("center") is not None:
            text += f"; complexity centre {facts['center']}"
        text += ")"
    return text


def data_line(stages: list[dict]) -> str:
    """Each distinct training set with the stages that used it, in order."""
    groups: list[tuple[dict, list[int]]] = []
    for i, st in enumerate(stages, 1):
        facts = stage_data(st)
        if groups and groups[-1][0] == facts:
            groups[-1][1].append(i)
        else:
            groups.append((facts, [i]))
    if len(groups) == 1:
        return data_text(groups[0][0])
    return "; ".join(
        f"stage{'s' if len(ids) > 1 else ''} {ids[0]}{f'-{ids[-1]}' if len(ids) > 1 else ''}: "
        + data_text(facts)
        for facts, ids in groups
    )


def device_text(hw: dict) -> str:
    return f"{hw.get('device')} ({hw.get('accelerator', 'cpu')}, {hw.get('cpu_threads')} thread(s))"


def stage_line(st: dict, batch: int, loss: str) -> str:
    planned = st.get("planned_iterations")
    of = f" of a {planned:,}-iteration schedule" if planned and planned != st["iterations"] else ""
    lr = f"lr {st['lr']}" + (
        f" halved at {', '.join(f'{m:,}' for m in st['milestones'])}"
        if st.get("milestones")
        else ""
    )
    for change in st.get("reschedules", []):
        # run.json's wording: "config.KEY (OLD in the run, NEW now)"
        what = "; ".join(
            re.sub(r"^config\.(\S+) \((.*) in the run, (.*) now\)$", r"\1 \2 → \3", c)
            for c in change["changes"]
        )
        lr += f" (schedule changed at iteration {change['step']:,} with --reschedule: {what})"
    return (
        f"`resyn train {st['preset']}`, {st['iterations']:,} iterations{of}, batch {batch}, "
        f"GT patch {st['patch']}, {lr}, L-{loss} loss ({st['wall_time_s'] / 3600:.2f} h"
        + (f" on {st['device']}" if st.get("device") else "")
        + f"; {st['source']})"
    )


def results_table(title: str, results: dict) -> list[str]:
    lines = [f"| {title} | PSNR | SSIM | PSNR-Y | SSIM-Y | images |", "|---|---|---|---|---|---|"]
    for name, r in sorted(results.items()):
        vals = [f"{float(r[k]):.4f}" for k in ("psnr", "ssim", "psnr_y", "ssim_y")]
        lines.append(f"| {name} | {' | '.join(vals)} | {r['n']} |")
    return lines


UNSEEN_INTRO = "data/test/ReSynUnseen: "
MEASURED = "Measured by `scripts/export_weights.py`"


def unseen_section(unseen: dict) -> list[str]:
    return [
        UNSEEN_INTRO + "6 crops of 3 photos used for nothing else (no training, no choice of "
        "checkpoint or setting looked at them); foliage close-ups, smoother than ReSynDemo, so "
        "their PSNRs are higher and compare only with each other:",
        "",
        *results_table("ReSynUnseen (reported only)", unseen),
    ]


def refresh_unseen(task: str) -> None:
    """Re-measure the shipped ``task`` weights on ReSynUnseen and put the result in its card
    (for weights whose run folder is gone; the rest of the card is kept as it is)."""
    card, weights = WEIGHTS / f"{task}.md", WEIGHTS / f"{task}.safetensors"
    if not (card.is_file() and weights.is_file()):
        raise SystemExit(f"{task}: no shipped weights and model card in {WEIGHTS}")
    text = card.read_text(encoding="utf-8")
    if MEASURED not in text:
        raise SystemExit(f"{card}: no line starting {MEASURED!r} to put the table before")
    head, tail = text.split(MEASURED, 1)
    if UNSEEN_INTRO in head:
        head = head[: head.index(UNSEEN_INTRO)]
    unseen = evaluate_levels({f"RWKV-IR light ({task})": weights}, task, UNSEEN_SET)
    body = head.rstrip("\n") + "\n\n" + "\n".join(unseen_section(unseen)) + "\n\n"
    atomic_write_text(card, body + MEASURED + tail)
    print(card.read_text(encoding="utf-8"))


def model_card(
    task: str, meta: dict, info: dict, results: dict, path: Path, unseen: dict | None = None
) -> str:
    cfg = meta["config"]
    stages = info["stages"]
    gpu = meta["hardware"].get("accelerator") == "gpu"
    script = "`scripts/gpu_train.sh`" if gpu else "`scripts/train_shipped_weights.sh`"
    where = "a GPU lent for minutes" if gpu else "CPUs shared with other jobs"
    training = [
        f"  {i}. {stage_line(st, cfg['batch'], cfg['loss']['type'])}"
        + (" then its weights started the next stage (`--init`)" if i < len(stages) else "")
        for i, st in enumerate(stages, 1)
    ]
    lines = [
        f"# `{task}`: RWKV-IR ({meta['model']['name']}, {meta['model']['parameters']:,} parameters)",
        "",
        f"- file: `{path.name}` ({path.stat().st_size / 1e6:.1f} MB, safetensors with its config)",
        f"- weights: {info['source']}",
        f"- training: {info['iterations']:,} iterations in {len(stages)} stage(s) "
        f"(the last by {script}); stages on a CPU reduce the standard's total batch (64 light "
        "SR, 16 denoising / JPEG) and patch:",
        *training,
        f"- wall time: {info['wall_time_s'] / 3600:.2f} h of training in all (the last stage on "
        f"{where}; each stage's machine above)",
        f"- data: {data_line(stages)}; held-out evaluation on data/test/ReSynDemo "
        f"({meta['data']['val_images']} photos, none of them or their source files in training)",
        f"- target: {TARGETS.get(task, '-')}",
        *(
            [f"- blind: one model for every level; measured at {', '.join(levels(task))}"]
            if task in EVAL_LEVELS
            else []
        ),
        "",
        *results_table("ReSynDemo (held-out; the validation set)", results),
    ]
    if unseen:
        lines += ["", *unseen_section(unseen)]
    lines += [
        "",
        "Measured by `scripts/export_weights.py` (`resyn eval`, BasicSR conventions: "
        "uint8 outputs, float64 metrics, crop border = scale for SR).",
        "",
    ]
    return "\n".join(lines)


def write_index() -> None:
    cards = sorted(WEIGHTS.glob("*.md"))
    body = [
        "# Shipped weights",
        "",
        "RWKV-IR light models trained on a CPU with `resyn train` "
        "(`scripts/train_shipped_weights.sh`), exported with `scripts/export_weights.py`. "
        "`resyn restore --task TASK` uses `TASK.safetensors` from this folder.",
        "",
    ]
    body += [f"- [{c.stem}]({c.name})" for c in cards if c.name != "README.md"]
    atomic_write_text(WEIGHTS / "README.md", "\n".join(body) + "\n")


if __name__ == "__main__":
    main()
