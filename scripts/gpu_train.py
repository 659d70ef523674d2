"""Fine-tune every task's model for a fixed number of minutes each, in one call (issue 17).

Run by ``scripts/gpu_train.sh`` on a lent GPU (the device's own python3, PYTHONPATH=src), and
on the CPU by tests/scripts/test_gpu_train.py with a tiny model and a few seconds per task.
Each task is one ``resyn train`` run (``--max-minutes``: it stops cleanly, validates, writes
``last.ckpt`` and its final weights, and ``run.json`` records the stop), started from the
shipped weights (``--init``); the runs share the device, ``--jobs`` at a time (default: all).

    python3 scripts/gpu_train.py --minutes 6.5 --out "$OUT"     # every task, all at once

Per task (``TASKS``): the preset, the model, and the shipped weights to start from, in order
of preference. When the first is missing a later one is used with ``--init-partial`` (only the
tensors whose name and shape match are loaded): sr-x3 starts from sr-x2 (all but the x3 head,
which starts at zero so that the model starts at bicubic), the blind models from denoise-25.
The schedule is a fine-tuning one: a constant learning rate (``LR``), validation and a
checkpoint every ``--every`` iterations, an EMA of the weights (decay 0.999, validated and
exported), and ``iterations`` far beyond what the minutes allow, so that the clock ends it.

Writes under ``--out``: ``runs/<task>/`` (run.json, metrics.csv, model.safetensors,
best.safetensors, checkpoints/last.ckpt: ``resyn train ... --resume`` continues it on any
machine), ``logs/<task>.log`` (the command's output, its command line first) and
``summary.json`` (per task: exit code, iterations, stop reason, validation PSNR before and
after, wall time). ``scripts/export_weights.py --gpu-runs OUT/runs`` then keeps each new file
only if it scores better on the held-out set than the shipped one.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class TaskPlan:
    preset: str
    model: str
    inits: tuple[str, ...]  # shipped weights to start from, in order of preference
    model_args: tuple[str, ...] = ()
    lr: float = 1e-4


SKIP = ("global_skip=bicubic",)
TASKS: dict[str, TaskPlan] = {
    "sr-x2": TaskPlan("light-sr-x2-50k", "rwkvir-light", ("sr-x2",), SKIP),
    "sr-x3": TaskPlan("light-sr-x3-50k", "rwkvir-light", ("sr-x3", "sr-x2"), SKIP, lr=2e-4),
    "sr-x4": TaskPlan("light-sr-x4-50k", "rwkvir-light", ("sr-x4",), SKIP),
    "denoise": TaskPlan("denoise-color-blind", "rwkvir-restore", ("denoise", "denoise-25")),
    "jpeg": TaskPlan("jpeg-color-blind", "rwkvir-restore", ("jpeg", "denoise-25"), lr=2e-4),
}
#: ``lr``: a task whose start is another task's model (sr-x3 from sr-x2, jpeg from the
#: denoiser) learns at the standard's 2e-4; the others are already trained for their task and
#: are fine-tuned at half of it.


def init_for(plan: TaskPlan, weights_dir: Path) -> tuple[Path | None, bool]:
    """(weights file, partial): the first shipped file of ``plan.inits``; partial unless it is
    the task's own (the first)."""
    for i, name in enumerate(plan.inits):
        path = weights_dir / f"{name}.safetensors"
        if path.is_file():
            return path, i > 0
    return None, False


def command(task: str, args: argparse.Namespace, out: Path) -> list[str]:
    plan = TASKS[task]
    init, partial = init_for(plan, args.weights_dir)
    if init is None and not args.allow_scratch:
        raise SystemExit(
            f"{task}: none of {', '.join(n + '.safetensors' for n in plan.inits)} in "
            f"{args.weights_dir}; pass --allow-scratch to train it from scratch"
        )
    sets = [
        "iterations=1000000",
        "sched.milestones=[]",
        f"optim.lr={plan.lr}",
        f"val.every={args.every}",
        f"checkpoint_every={args.every}",
        f"log_every={max(1, args.every // 10)}",
        "ema_decay=0.999",
        f"data.workers={args.workers}",
        *args.set,
    ]
    cmd = [args.python, "-m", "resyn.cli.main", "train", plan.preset, "--model", plan.model]
    for arg in (*plan.model_args, *args.model_arg):
        cmd += ["--model-arg", arg]
    for item in sets:
        cmd += ["--set", item]
    cmd += ["--train", str(args.train), "--val", str(args.val), "--out", str(out / "runs" / task)]
    cmd += ["--accelerator", args.accelerator, "--devices", "1", "--no-progress"]
    cmd += ["--max-minutes", f"{args.minutes:g}"]
    if init is not None:
        cmd += ["--init", str(init)] + (["--init-partial"] if partial else [])
    return cmd


def summarise(task: str, run: Path, code: int | None, seconds: float) -> dict:
    facts: dict = {"exit_code": code, "seconds": round(seconds, 1), "run": str(run)}
    run_file = run / "run.json"
    if not run_file.is_file():
        return facts
    meta = json.loads(run_file.read_text())
    final = meta.get("final") or {}
    rows = []
    metrics = run / "metrics.csv"
    if metrics.is_file():
        import csv

        rows = [r for r in csv.DictReader(metrics.open()) if r.get("val_psnr")]
    facts.update(
        preset=meta["preset"],
        init=(meta["model"].get("init") or {}).get("path"),
        init_partial=bool((meta["model"].get("init") or {}).get("partial")),
        iterations=final.get("step"),
        stopped_by=final.get("stopped_by"),
        baseline_psnr=(meta.get("baseline") or {}).get("psnr"),
        first_val_psnr=float(rows[0]["val_psnr"]) if rows else None,
        last_val_psnr=float(rows[-1]["val_psnr"]) if rows else None,
        best_val_psnr=final.get("best_psnr"),
        hardware=meta.get("hardware"),
        batch=meta.get("batch"),
    )
    return facts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, required=True, help="training minutes per task")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--train", type=Path, default=ROOT / "runs" / "gpu-data")
    parser.add_argument("--val", type=Path, default=ROOT / "data" / "test" / "ReSynDemo")
    parser.add_argument("--weights-dir", type=Path, default=ROOT / "src" / "resyn" / "weights")
    parser.add_argument("--accelerator", default="gpu", choices=("gpu", "cpu"))
    parser.add_argument("--jobs", type=int, default=0, help="runs at a time (0: all)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers per run")
    parser.add_argument("--every", type=int, default=250, help="validate/checkpoint cadence")
    parser.add_argument("--set", action="append", default=[], help="extra --set for every run")
    parser.add_argument("--model-arg", action="append", default=[], help="extra --model-arg")
    parser.add_argument("--python", default=sys.executable, help="interpreter for resyn train")
    parser.add_argument("--allow-scratch", action="store_true")
    parser.add_argument(
        "--grace",
        type=float,
        default=150.0,
        help="seconds a run may take beyond --minutes "
        "(start-up, first validation, final save) before it is killed",
    )
    args = parser.parse_args(argv)
    if not 0 < args.minutes < 24 * 60:
        parser.error(f"--minutes must be a positive number of minutes, got {args.minutes}")
    if not (args.train.is_dir() and args.val.is_dir()):
        parser.error(f"--train {args.train} and --val {args.val} must be folders")
    out = args.out
    (out / "logs").mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), *filter(None, [env.get("PYTHONPATH")])])
    queue = [(task, command(task, args, out)) for task in args.tasks]
    jobs = args.jobs or len(queue)
    limit = args.minutes * 60 + args.grace
    running: dict[str, tuple[subprocess.Popen, float, object]] = {}
    summary: dict[str, dict] = {}
    while queue or running:
        while queue and len(running) < jobs:
            task, cmd = queue.pop(0)
            log = (out / "logs" / f"{task}.log").open("w")
            log.write("$ " + shlex.join(cmd) + "\n")
            log.flush()
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            running[task] = (proc, time.monotonic(), log)
            print(f"started {task} (pid {proc.pid})", flush=True)
        time.sleep(0.5)
        for task, (proc, t0, log) in list(running.items()):
            if proc.poll() is None and time.monotonic() - t0 > limit:
                proc.kill()  # past --minutes plus the grace: its last checkpoint is kept
                print(f"{task}: killed after {limit:.0f} s", flush=True)
            if proc.poll() is not None:
                log.close()
                del running[task]
                summary[task] = summarise(
                    task, out / "runs" / task, proc.returncode, time.monotonic() - t0
                )
                print(f"{task}: {json.dumps(summary[task])}", flush=True)
    tmp = out / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    tmp.replace(out / "summary.json")
    for task in summary:  # best.ckpt duplicates best.safetensors; keep what comes back small
        (out / "runs" / task / "checkpoints" / "best.ckpt").unlink(missing_ok=True)
    return 0 if all(s["exit_code"] == 0 for s in summary.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
