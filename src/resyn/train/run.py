"""``resyn train``: check everything, plan the batch, run Lightning, export the weights.

Run folder::

    RUN_DIR/run.json                 preset, resolved config, model, hardware, batch plan, versions
    RUN_DIR/metrics.csv              step, loss, lr, val_psnr, val_ssim, wall_time
    RUN_DIR/checkpoints/last.ckpt    written atomically every ``checkpoint_every`` iterations
    RUN_DIR/checkpoints/best.ckpt    best validation PSNR so far
    RUN_DIR/best.safetensors         its weights (save_model; info: step, val_psnr...)
    RUN_DIR/model.safetensors        final weights (EMA weights when ema_decay is set)
    RUN_DIR/tensorboard/             the metrics.csv values as TensorBoard scalars
"""

from __future__ import annotations

import json
import logging
import os
import platform
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resyn.errors import ResynError
from resyn.train.config import TrainConfig
from resyn.train.data import DataError

if TYPE_CHECKING:
    from torch import nn

    from resyn.degrade.tasks import Task
    from resyn.train.data import Pair, ValImage

RUN_FILE = "run.json"

#: Lightning warnings that do not apply to resyn's runs, silenced during ``fit``: resuming
#: mid-epoch is exact here (``StepSampler`` starts at the checkpoint's step, tested in
#: tests/train/test_resume.py), and the pytree deprecation is Lightning's own.
LIGHTNING_NOISE = (
    r"You're resuming from a checkpoint that ended before the epoch ended",
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
)


class RunError(ResynError, ValueError):
    """A run that cannot start (bad resume, occupied folder, impossible batch plan...)."""


@dataclass
class TrainOptions:
    preset: str
    model: str
    train: Path
    val: Path
    out: Path
    overrides: list[str] = field(default_factory=list)
    model_args: dict[str, Any] = field(default_factory=dict)
    budget: float | None = None
    resume: bool = False
    reschedule: bool = False
    accelerator: str = "auto"
    devices: int | str = "auto"
    num_nodes: int = 1
    workers: int | None = None
    seed: int | None = None
    max_device_batch: int | None = None
    precision: str | None = None
    progress: bool = True
    init: Path | None = None
    init_partial: bool = False  # load only the --init tensors whose name and shape match
    max_minutes: float | None = None  # stop this session cleanly after this much training


def plan_batch(total: int, world: int, max_device_batch: int | None) -> tuple[int, int]:
    """(per-device batch, gradient accumulation) with per-device x world x accumulation = total.

    Per-device batch is the largest divisor of ``total / world`` not above ``max_device_batch``.
    """
    if total % world:
        raise RunError(
            f"total batch {total} is not divisible by {world} processes (devices x nodes); "
            "choose a device count that divides it or change `batch` with --set"
        )
    per_rank = total // world
    cap = per_rank if max_device_batch is None else max_device_batch
    if cap < 1:
        raise RunError(f"--max-device-batch must be >= 1, got {cap}")
    b = max(d for d in range(1, per_rank + 1) if per_rank % d == 0 and d <= cap)
    return b, per_rank // b


def _resolve_accelerator(name: str) -> str:
    import torch

    if name == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    if name not in ("cpu", "gpu", "cuda"):
        raise RunError(f"--accelerator must be cpu, gpu or auto, not {name!r}")
    if name in ("gpu", "cuda") and not torch.cuda.is_available():
        raise RunError("--accelerator gpu requested but no CUDA device is available")
    return "gpu" if name == "cuda" else name


PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")
PRECISION_ALIASES = {
    "fp32": "32-true",
    "float32": "32-true",
    "32": "32-true",
    "bf16": "bf16-mixed",
    "bfloat16": "bf16-mixed",
    "fp16": "16-mixed",
    "float16": "16-mixed",
    "16": "16-mixed",
}


def resolve_precision(value: str | None, accelerator: str) -> str:
    """Lightning's precision name for ``--precision`` (default: bf16-mixed on GPU, 32-true on
    CPU); aliases fp32 / bf16 / fp16 as ``resyn restore`` takes them. RunError otherwise."""
    if value is None:
        return "bf16-mixed" if accelerator == "gpu" else "32-true"
    name = PRECISION_ALIASES.get(value.strip().lower(), value.strip().lower())
    if name not in PRECISIONS:
        why = ""
        if name in ("16-true", "bf16-true", "64-true", "64"):
            why = " (whole-model half or double precision is not supported: validation and the "
            why += "exported weights are float32; use a mixed precision)"
        aliases = ", ".join(f"{k}={v}" for k, v in PRECISION_ALIASES.items())
        raise RunError(
            f"--precision {value!r} is not one of {', '.join(PRECISIONS)}{why}; aliases: {aliases}"
        )
    if name == "16-mixed" and accelerator == "cpu":
        raise RunError(
            f"--precision {value!r} (16-mixed) needs a GPU: float16 autocast is not supported on "
            "CPU; use 32-true (the CPU default) or bf16-mixed"
        )
    return name


def _world_size(accelerator: str, devices: int | str, num_nodes: int) -> int:
    import torch

    if devices == "auto":
        n = torch.cuda.device_count() if accelerator == "gpu" else 1
    else:
        n = int(devices)
    if n < 1 or num_nodes < 1:
        raise RunError("--devices and --num-nodes must be >= 1")
    return n * num_nodes


def launched_rank() -> int:
    """This process's global rank as the launcher set it (torchrun ``RANK``, SLURM
    ``SLURM_PROCID``, Lightning's own ``NODE_RANK`` / ``LOCAL_RANK``); 0 when not launched."""
    env = os.environ
    if "RANK" in env:
        return int(env["RANK"])
    if int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in env:
        return int(env["SLURM_PROCID"])
    return int(env.get("NODE_RANK", "0") or 0) + int(env.get("LOCAL_RANK", "0") or 0)


def _versions() -> dict[str, str]:
    import lightning
    import torch

    import resyn

    return {
        "resyn": resyn.__version__,
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "python": platform.python_version(),
    }


#: Config keys a resumed run may change with ``--reschedule``: when it ends, when the learning
#: rate drops, and how often it validates, checkpoints and logs. None of them changes what was
#: trained so far or which samples later steps draw (``StepSampler``: step s always takes the
#: same samples), and the scheduler is re-targeted at load (``RestorationModule``).
SCHEDULE_KEYS = ("iterations", "sched", "val.every", "checkpoint_every", "log_every")


def _comparable(run: dict[str, Any], schedule: bool = True) -> dict[str, Any]:
    """What must not change across a resume (as JSON: tuples and lists compare equal); without
    ``schedule``, the SCHEDULE_KEYS are left out."""
    out = json.loads(
        json.dumps(
            {
                "preset": run["preset"],
                "model": run["model"]["name"],
                "model_args": run["model"].get("args", {}),
                "init": (run["model"].get("init") or {}).get("sha256"),
                "config": run["config"],
            }
        )
    )
    out["config"].get("data", {}).pop("workers", None)
    out["config"].get("data", {}).pop("cache_mb", None)
    out["config"].get("data", {}).pop("verify_mb", None)
    if not schedule:
        for key in SCHEDULE_KEYS:
            *parents, leaf = key.split(".")
            node = out["config"]
            for name in parents:
                node = node.get(name, {})
            node.pop(leaf, None)
    return out


def _checkpoint_step(ckpt: Path) -> int:
    """The iteration ``ckpt`` was saved at. A damaged or foreign file (read with
    ``weights_only=True``: nothing in it runs) is a ``RunError`` naming it."""
    import pickle

    import torch

    try:
        return int(torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"])
    except (
        pickle.UnpicklingError,
        RuntimeError,
        EOFError,
        OSError,
        ValueError,
        KeyError,
        TypeError,
    ) as exc:
        raise RunError(
            f"--resume: cannot read the checkpoint {ckpt} ({_load_error_reason(exc)}); it is "
            "damaged or was not written by resyn train. Move it away and start again without "
            "--resume"
        ) from None


def _load_error_reason(exc: BaseException) -> str:
    """The cause of a failed ``torch.load`` in a few words (torch's messages run on with
    advice, such as retrying with ``weights_only=False``, that must not be followed here)."""
    import pickle

    text = str(exc).strip()
    if isinstance(exc, pickle.UnpicklingError):
        marker = "WeightsUnpickler error:"
        detail = text.split(marker, 1)[1].strip().splitlines() if marker in text else []
        return "refused by weights-only loading" + (f": {detail[0]}" if detail else "")
    first = text.splitlines()[0].split(". ")[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _diff(a: Any, b: Any, prefix: str = "", where: str = "in the run") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k), b.get(k), f"{prefix}{k}.", where)
        return out
    return [] if a == b else [f"{prefix[:-1]} ({a!r} {where}, {b!r} now)"]


@dataclass(frozen=True)
class BatchPlan:
    """``total`` samples per iteration = ``per_device`` x ``accumulate`` x ``world``."""

    total: int
    per_device: int
    accumulate: int
    world: int

    def record(self) -> dict[str, int]:
        return {
            "total": self.total,
            "per_device": self.per_device,
            "accumulate": self.accumulate,
            "world_size": self.world,
        }


@dataclass(frozen=True)
class _Data:
    train_pairs: list[Pair]
    val_pairs: list[Pair]
    decoded: bool  # every training image was decoded once (``data.verify_mb``)


@dataclass
class Prepared:
    """Everything a run needs, checked: ``run`` is the record written to run.json."""

    options: TrainOptions
    config: TrainConfig
    task: Task
    train_pairs: list[Pair]
    val_images: list[ValImage]
    model: nn.Module
    run: dict[str, Any]
    ckpt: Path | None
    batch: BatchPlan
    accelerator: str  # Lightning's accelerator name ("cpu", "gpu")
    precision: str  # Lightning's precision name ("32-true", "bf16-mixed"...)
    y_channel: bool  # validation PSNR on BT.601 Y
    restart: bool = False  # a fresh start over a run that stopped before its first checkpoint


def prepare(opts: TrainOptions) -> Prepared:
    """Everything that can fail before training: config, data, model, batch plan, resume."""
    from resyn.degrade import parse_task
    from resyn.train.data import load_val
    from resyn.train.loop import baseline_metrics

    if opts.reschedule and not opts.resume:
        raise RunError("--reschedule changes the schedule of a resumed run: it needs --resume")
    if opts.max_minutes is not None and not (0 < opts.max_minutes < float("inf")):
        raise RunError(f"--max-minutes must be a positive number, got {opts.max_minutes}")
    if opts.init_partial and opts.init is None:
        raise RunError("--init-partial says how to load --init weights: it needs --init")
    config = _load_config(opts)
    task = parse_task(config.task)
    accelerator = _resolve_accelerator(opts.accelerator)
    precision = resolve_precision(opts.precision, accelerator)
    data = _find_data(opts, config, task)
    model, init = _build_model(opts, config, task)
    world = _world_size(accelerator, opts.devices, opts.num_nodes)
    batch = BatchPlan(config.batch, *plan_batch(config.batch, world, opts.max_device_batch), world)
    y_channel = config.val.y_channel and task.channels == 3
    hardware = _hardware(accelerator, opts.devices, opts.num_nodes, world, precision)
    new_run = _run_record(opts, config, model, init, data, batch, hardware, y_channel)
    ckpt, restart = _resume_point(opts, config, new_run)
    # A blind task's model validates at the fixed level val.task (denoise-25, jpeg-q10)
    val_images = load_val(data.val_pairs, parse_task(config.val_task))
    if new_run.get("baseline") is None and launched_rank() == 0:
        new_run["baseline"] = baseline_metrics(val_images, config.crop_border, y_channel)
    return Prepared(
        options=opts,
        config=config,
        task=task,
        train_pairs=data.train_pairs,
        val_images=val_images,
        model=model,
        run=new_run,
        ckpt=ckpt,
        batch=batch,
        accelerator=accelerator,
        precision=precision,
        y_channel=y_channel,
        restart=restart,
    )


def _load_config(opts: TrainOptions) -> TrainConfig:
    """The standard's preset with the command's overrides (``--seed``, ``--workers`` too)."""
    from resyn.train.standard import load_config

    overrides = list(opts.overrides)
    if opts.seed is not None:
        overrides.append(f"seed={opts.seed}")
    if opts.workers is not None:
        overrides.append(f"data.workers={opts.workers}")
    return load_config(opts.preset, overrides, opts.budget)


def _find_data(opts: TrainOptions, config: TrainConfig, task: Task) -> _Data:
    """The training and validation pairs, checked (sizes; decoded when ``data.verify_mb``)."""
    from resyn.train.data import check_pairs, decode_all, find_pairs

    train_pairs = find_pairs(opts.train, task, what="--train", prefer_sub=True)
    check_pairs(train_pairs, task.scale, min_hr=config.patch, what="--train")
    verify = config.data.verify_mb
    decoded = verify > 0 and decode_all(train_pairs, what="--train", max_bytes=verify << 20)
    val_pairs = find_pairs(opts.val, task, what="--val")
    check_pairs(val_pairs, task.scale, what="--val")
    return _Data(train_pairs, val_pairs, decoded)


def _build_model(
    opts: TrainOptions, config: TrainConfig, task: Task
) -> tuple[nn.Module, dict[str, Any] | None]:
    """The model to train, its initial weights depending only on the seed (or ``--init``)."""
    import torch

    from resyn.models import build_model

    torch.manual_seed(config.seed)
    try:
        model = build_model(
            opts.model, scale=task.scale, in_channels=task.channels, **opts.model_args
        )
    except (ValueError, TypeError) as exc:
        raise RunError(f"--model {opts.model}: {exc}") from None
    init = (
        _load_init(model, Path(opts.init), partial=opts.init_partial)
        if opts.init is not None
        else None
    )
    return model, init


def _run_record(
    opts: TrainOptions,
    config: TrainConfig,
    model: nn.Module,
    init: dict[str, Any] | None,
    data: _Data,
    batch: BatchPlan,
    hardware: dict[str, Any],
    y_channel: bool,
) -> dict[str, Any]:
    """What run.json records about the run (compared on ``--resume``)."""
    from resyn.models import describe

    return {
        "preset": opts.preset,
        "config": config.model_dump(mode="json"),
        "model": {
            "name": opts.model,
            "args": opts.model_args,
            "arch": describe(model).architecture,
            "parameters": sum(p.numel() for p in model.parameters()),
            "init": init,
        },
        "data": {
            "train": str(opts.train),
            "val": str(opts.val),
            "train_images": len(data.train_pairs),
            "train_decoded": data.decoded,
            "val_images": len(data.val_pairs),
        },
        "batch": batch.record(),
        "hardware": hardware,
        "versions": _versions(),
        "metric": {"y_channel": y_channel, "crop_border": config.crop_border},
    }


def _resume_point(
    opts: TrainOptions, config: TrainConfig, new_run: dict[str, Any]
) -> tuple[Path | None, bool]:
    """``(checkpoint to resume from, restart)``; on ``--resume`` checks the run folder's
    run.json against ``new_run`` and carries its history (baseline, sessions, reschedules)."""
    out = Path(opts.out)
    run_file = out / RUN_FILE
    ckpt = out / "checkpoints" / "last.ckpt"
    if launched_rank() > 0:
        # Rank 0 checks the run folder and writes run.json; the other processes of a launch
        # only follow (they may start after rank 0 has written it).
        new_run["baseline"] = None
        return (ckpt if opts.resume else None), False
    if opts.resume:
        _continue_run(opts, config, new_run, run_file, ckpt)
        return ckpt, False
    if ckpt.exists() or (out / "model.safetensors").exists():
        raise RunError(
            f"{out} already holds a run; pass --resume to continue it or choose another --out"
        )
    # run.json without a checkpoint: a run that stopped before its first checkpoint. It
    # trained nothing durable (--resume has nothing to continue), so it is started again.
    return None, run_file.exists()


def _continue_run(
    opts: TrainOptions,
    config: TrainConfig,
    new_run: dict[str, Any],
    run_file: Path,
    ckpt: Path,
) -> None:
    out = Path(opts.out)
    if not run_file.is_file():
        raise RunError(f"--resume: {run_file} does not exist (nothing to resume)")
    old = json.loads(run_file.read_text())
    fixed = _diff(_comparable(old, schedule=False), _comparable(new_run, schedule=False))
    if fixed:
        raise RunError(f"--resume: {out} was trained with different settings: " + "; ".join(fixed))
    changes = _diff(_comparable(old), _comparable(new_run))
    if changes and not opts.reschedule:
        raise RunError(
            f"--resume: {out} was trained with a different schedule: "
            + "; ".join(changes)
            + " (pass --reschedule to change the schedule of a resumed run)"
        )
    if not ckpt.is_file():
        raise RunError(f"--resume: no checkpoint {ckpt} yet; start again without --resume")
    new_run["baseline"] = old.get("baseline")
    new_run["sessions"] = [*old.get("sessions", [old["hardware"]]), new_run["hardware"]]
    new_run["reschedules"] = list(old.get("reschedules", []))
    done = _checkpoint_step(ckpt)  # a damaged checkpoint is named here, not in Lightning
    if changes:
        if done >= config.iterations:
            raise RunError(
                f"--reschedule: iterations={config.iterations} is not above the "
                f"checkpoint's {done} iterations: nothing left to train"
            )
        new_run["reschedules"].append({"step": done, "changes": changes})


def _load_init(model: Any, path: Path, partial: bool = False) -> dict[str, Any]:
    """Start ``model`` from the weights in ``path`` (``save_model`` safetensors, fine-tuning).

    The file's architecture and configuration must be the ones being trained: a mismatch is a
    RunError naming the differing fields. With ``partial`` (``--init-partial``) the architecture
    must match but the configuration may differ (an x2 model starting an x3 one): only the
    tensors whose name and shape match are loaded, the others keep their fresh initialisation
    and are listed in ``skipped``. Returns what run.json records about the start."""
    import hashlib

    from safetensors.torch import load

    from resyn.models.weights import model_config_dict, read_metadata

    try:
        meta = read_metadata(path)
    except (FileNotFoundError, ValueError) as exc:
        raise RunError(f"--init: {exc}") from None
    arch = getattr(type(model), "arch", None)
    if meta["arch"] != arch:
        raise RunError(f"--init: {path} holds a {meta['arch']} model, the run trains {arch}")
    want = json.loads(json.dumps(model_config_dict(model)))
    diffs = _diff(meta["config"], want, where="in the file")
    if diffs and not partial:
        raise RunError(
            f"--init: {path} was built with other settings: " + "; ".join(diffs) + " (add "
            "--init-partial to load only the tensors whose shapes match)"
        )
    data = path.read_bytes()  # read once: the weights and the hash come from the same bytes
    record = {
        "path": str(path),
        "sha256": hashlib.sha256(data).hexdigest(),
        "info": meta["info"],
    }
    if not partial:
        model.load_state_dict(load(data), strict=True)
        return record
    loaded, skipped = _load_matching(model, load(data))
    if not loaded:
        raise RunError(f"--init-partial: no tensor of {path} matches the model in name and shape")
    return record | {
        "partial": True,
        "loaded": len(loaded),
        "skipped": skipped,
        "config_differences": diffs,
    }


def _load_matching(model: Any, tensors: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Copy the tensors whose name and shape match the model's; (loaded names, skipped with
    the reason)."""
    own = model.state_dict()
    loaded = [k for k, v in tensors.items() if k in own and tuple(own[k].shape) == tuple(v.shape)]
    skipped = [  # in the model's order (the file's order is not defined)
        f"{k}: shape {list(tensors[k].shape)} in the file, {list(v.shape)} in the model"
        for k, v in own.items()
        if k in tensors and k not in loaded
    ]
    skipped += [f"{k}: not in the model" for k in sorted(tensors) if k not in own]
    skipped += [f"{k}: not in the file (kept as initialised)" for k in own if k not in tensors]
    model.load_state_dict({k: tensors[k] for k in loaded}, strict=False)
    return loaded, skipped


def _hardware(accelerator: str, devices: Any, nodes: int, world: int, precision: str) -> dict:
    import torch

    name = (
        torch.cuda.get_device_name(0)
        if accelerator == "gpu"
        else platform.processor() or platform.machine()
    )
    if accelerator == "cpu":
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
    return {
        "accelerator": accelerator,
        "device": name,
        "devices": str(devices),
        "num_nodes": nodes,
        "world_size": world,
        "precision": precision,
        "cpu_threads": torch.get_num_threads(),
        "host": platform.node(),
    }


class _NoAdverts(logging.Filter):
    """Drop Lightning's advertising line for a hosted logger (noise in a CLI's output)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


def _quiet_lightning() -> None:
    log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _NoAdverts) for f in log.filters):
        log.addFilter(_NoAdverts())


def run_training(prep: Prepared, echo: Callable[[str], None] | None = None) -> Path | None:
    """Fit with Lightning (resuming from ``prep.ckpt`` when set) and export the final weights.

    Returns the weights path on global rank 0, None on the other ranks."""
    import lightning as L
    import torch

    from resyn.io import atomic_write_text
    from resyn.models import save_model
    from resyn.train.data import TrainSet
    from resyn.train.datamodule import StandardDataModule
    from resyn.train.loop import AtomicCheckpointIO, StandardLoop
    from resyn.train.module import RestorationModule

    opts, cfg, run = prep.options, prep.config, prep.run
    out = Path(opts.out)
    b, accum = prep.batch.per_device, prep.batch.accumulate
    dataset = TrainSet(
        prep.train_pairs,
        prep.task,
        cfg.patch,
        seed=cfg.seed,
        hflip=cfg.augment.hflip,
        rot90=cfg.augment.rot90,
        enlarge_ratio=cfg.data.enlarge_ratio,
        cache_bytes=cfg.data.cache_mb << 20,
    )

    module = RestorationModule(prep.model, cfg)
    data = StandardDataModule(
        dataset,
        cfg,
        per_device=b,
        accumulate=accum,
        pin_memory=prep.accelerator == "gpu",
    )
    loop = StandardLoop(
        run_dir=out,
        config=cfg,
        val_images=prep.val_images,
        y_channel=prep.y_channel,
        echo=echo,
        max_seconds=None if opts.max_minutes is None else opts.max_minutes * 60.0,
    )
    callbacks: list[Any] = [loop]
    if opts.progress:
        from resyn.train.progress import TrainProgressBar

        callbacks.append(TrainProgressBar(accum))
    from lightning.pytorch.loggers import TensorBoardLogger

    # Event files under RUN_DIR/tensorboard; written with tensorboardX (a dependency: small,
    # unlike the tensorboard app, which is needed only to view them and is used when present).
    logger = TensorBoardLogger(str(out), name="tensorboard", version="", default_hp_metric=False)
    _quiet_lightning()
    trainer = L.Trainer(
        accelerator=prep.accelerator,
        devices=opts.devices,
        num_nodes=opts.num_nodes,
        precision=prep.precision,
        max_steps=cfg.iterations,
        max_epochs=-1,
        accumulate_grad_batches=accum,
        use_distributed_sampler=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        enable_checkpointing=False,
        enable_progress_bar=opts.progress,
        enable_model_summary=False,
        logger=logger,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        default_root_dir=str(out),
        log_every_n_steps=cfg.log_every,
    )
    if trainer.is_global_zero:
        if prep.restart:
            _clear_stopped_run(out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / RUN_FILE, json.dumps(run, indent=2) + "\n")
    torch.manual_seed(cfg.seed)
    try:
        with warnings.catch_warnings():
            for message in LIGHTNING_NOISE:
                warnings.filterwarnings("ignore", message=message)
            trainer.fit(
                module,
                datamodule=data,
                ckpt_path=str(prep.ckpt) if prep.ckpt else None,
                weights_only=True,
            )
    except DataError as exc:
        # An image that only fails when decoded (a truncated file) is met in the DataLoader,
        # possibly in a worker process, whose re-raised message carries its traceback.
        reason = str(exc).strip().splitlines()[-1]
        reason = reason.split("DataError: ", 1)[-1]
        last = out / "checkpoints" / "last.ckpt"
        kept = f"the last good checkpoint {last} is kept" if last.is_file() else "no checkpoint yet"
        raise DataError(
            f"--train: {reason}; training stopped at iteration {trainer.global_step} ({kept})"
        ) from None

    if trainer.is_global_zero:
        final = {
            "step": trainer.global_step,
            "wall_time": loop.wall,
            "best_psnr": loop.best,
            "best_step": loop.best_step,
            # the schedule's end, or this session's --max-minutes (resume to continue)
            "stopped_by": "iterations" if loop.stopped_at is None else "max_minutes",
            "max_minutes": opts.max_minutes,
        }
        run["final"] = final
        atomic_write_text(out / RUN_FILE, json.dumps(run, indent=2) + "\n")
        info = {
            "preset": opts.preset,
            "task": cfg.task,
            "iterations": trainer.global_step,
            "total_batch": cfg.batch,
            "ema": cfg.ema_decay is not None,
            "seed": cfg.seed,
            "val_psnr": _last_psnr(out),
            "baseline_psnr": run["baseline"]["psnr"],
        }
        save_model(module.eval_model, out / "model.safetensors", info=info)
        return out / "model.safetensors"
    return None


def _clear_stopped_run(out: Path) -> None:
    """Remove what a run that stopped before its first checkpoint left beside run.json (its
    best-so-far weights and TensorBoard events), so that none of it is mistaken for the new
    run's. Its metrics.csv rows are dropped by the loop when training starts at step 0."""
    import shutil

    for name in ("checkpoints/best.ckpt", "best.safetensors"):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / "tensorboard", ignore_errors=True)


def _last_psnr(out: Path) -> float | None:
    from resyn.train.loop import read_metrics

    vals = [
        r["val_psnr"] for r in read_metrics(out / "metrics.csv") if r.get("val_psnr") is not None
    ]
    return vals[-1] if vals else None


def train(opts: TrainOptions, echo: Callable[[str], None] | None = None) -> Path | None:
    """Prepare (all checks) then train. Raises DataError / RunError / ConfigError on bad input."""
    os.environ.setdefault("PYTHONHASHSEED", "0")
    return run_training(prepare(opts), echo=echo)


__all__ = [
    "PRECISIONS",
    "DataError",
    "Prepared",
    "RunError",
    "TrainOptions",
    "plan_batch",
    "prepare",
    "resolve_precision",
    "train",
]
