"""Training the toy model: deterministic from its seed, resumable, EMA weights exported as
``toy.safetensors`` + ``toy.json`` (``motiongrid toy train``)."""
from __future__ import annotations

import csv
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from motiongrid.bench.hashing import sha256_file
from motiongrid.bench.toyworld import ShapesOptions, random_spec, render_clip
from motiongrid.bench.video import to_minus_one_one
from motiongrid.methods.toy.model import (
    SAMPLER_CONFIG,
    TOY_CLIP_OPTIONS,
    PromptEncoder,
    ToyBackbone,
    TrainConfig,
    _combined_state,
    _split_state,
    build_model,
    count_parameters,
    default_schedule_config,
    default_unet_config,
    make_ddim_scheduler,
    toy_shapes_options,
    toy_vocabulary,
)
from motiongrid.methods.toy.sample import QUALITY_PROMPTS, quality_report


def _step_generators(seed: int, step: int) -> tuple[np.random.Generator, torch.Generator]:
    """Everything random in one step comes from these, so runs replay and resume exactly."""
    rng = np.random.default_rng([seed, step])
    gen = torch.Generator().manual_seed(int(np.random.default_rng([seed, step, 1]).integers(0, 2**62)))
    return rng, gen


def make_batch(opts: ShapesOptions, rng: np.random.Generator, batch_size: int, label_dropout: float
               ) -> tuple[torch.Tensor, list[str]]:
    """(B, 3, F, H, W) in [-1, 1] and the prompts ("" where dropped)."""
    videos, prompts = [], []
    for _ in range(batch_size):
        spec = random_spec(rng, opts)
        frames, _, _ = render_clip(spec, opts)
        videos.append(to_minus_one_one(frames).permute(1, 0, 2, 3))
        prompts.append("" if rng.random() < label_dropout else spec.prompt())
    return torch.stack(videos), prompts


def _lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
    return cfg.lr * (cfg.min_lr_fraction + (1 - cfg.min_lr_fraction) * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def _ema_update(ema: list[torch.Tensor], params: list[torch.Tensor], decay: float) -> None:
    torch._foreach_lerp_(ema, params, 1 - decay)


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(path.name + ".part")
    write(tmp)
    os.replace(tmp, path)


class _Trainer:
    def __init__(self, out_dir: Path, steps: int, seed: int, cfg: TrainConfig, unet_config: dict,
                 clip_options: dict, prompt_tokens: int):
        from diffusers import DDPMScheduler

        self.out, self.steps, self.seed, self.cfg = out_dir, steps, seed, cfg
        self.clip_options = dict(clip_options)
        self.opts = toy_shapes_options(**clip_options)
        self.schedule = default_schedule_config()
        self.noise = DDPMScheduler(**self.schedule)
        vocab = toy_vocabulary(self.opts.colours, self.opts.kinds)
        self.prompt_config = {"vocab": vocab, "dim": unet_config["cross_attention_dim"], "max_tokens": prompt_tokens}
        self.unet_config = unet_config
        torch.manual_seed(seed)                     # initial weights
        self.unet, self.encoder = build_model(unet_config, self.prompt_config)
        self.params = [p for m in (self.unet, self.encoder) for p in m.parameters()]
        self.ema = [p.detach().clone() for p in self.params]
        self.opt = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.step = 0

    # -- checkpoints
    @property
    def ckpt_path(self) -> Path:
        return self.out / "checkpoint.pt"

    def config_dict(self) -> dict:
        return {"format": "motiongrid-toy/1", "unet": self.unet_config, "prompt_encoder": self.prompt_config,
                "schedule": self.schedule, "sampler": SAMPLER_CONFIG, "clip_options": self.clip_options,
                "train": {**self.cfg.__dict__, "seed": self.seed, "steps": self.steps}}

    def save_checkpoint(self) -> None:
        state = {"step": self.step, "model": _combined_state(self.unet, self.encoder),
                 "ema": [e.clone() for e in self.ema], "optimizer": self.opt.state_dict(),
                 "config": self.config_dict(),
                 # RNG: batches/noise of step k come from generators seeded by (seed, k); nothing
                 # else is random, so step + seed is the whole RNG state.
                 "rng": {"scheme": "per-step (seed, step)", "seed": self.seed}}
        _write_atomic(self.ckpt_path, lambda p: torch.save(state, p))

    def load_checkpoint(self) -> None:
        state = torch.load(self.ckpt_path, map_location="cpu", weights_only=False)
        saved = state["config"]
        mine = self.config_dict()
        for key in ("unet", "prompt_encoder", "schedule", "clip_options"):
            if json.dumps(saved[key], sort_keys=True, default=list) != json.dumps(mine[key], sort_keys=True, default=list):
                raise ValueError(f"cannot resume from {self.ckpt_path}: its {key} config differs from this run's")
        if saved["train"]["seed"] != self.seed:
            raise ValueError(f"cannot resume from {self.ckpt_path}: it was trained with seed {saved['train']['seed']}, not {self.seed}")
        unet_state, enc_state = _split_state(state["model"])
        self.unet.load_state_dict(unet_state)
        self.encoder.load_state_dict(enc_state)
        with torch.no_grad():
            for e, s in zip(self.ema, state["ema"]):
                e.copy_(s)
        self.opt.load_state_dict(state["optimizer"])
        self.step = int(state["step"])

    # -- one step
    def train_step(self) -> dict:
        cfg = self.cfg
        rng, gen = _step_generators(self.seed, self.step)
        x0, prompts = make_batch(self.opts, rng, cfg.batch_size, cfg.label_dropout)
        b, f = x0.shape[0], x0.shape[2]
        t = torch.randint(0, self.noise.config.num_train_timesteps, (b,), generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        xt = self.noise.add_noise(x0, noise, t)
        target = self.noise.get_velocity(x0, noise, t)
        lr = _lr_at(self.step, self.steps, cfg)
        for group in self.opt.param_groups:
            group["lr"] = lr
        context = self.encoder(prompts).repeat_interleave(f, dim=0)
        pred = self.unet(xt, t, encoder_hidden_states=context).sample
        loss = torch.nn.functional.mse_loss(pred, target)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
        self.opt.step()
        # EMA warm-up: early on the average follows the weights closely
        decay = min(cfg.ema_decay, (1 + self.step) / (10 + self.step))
        _ema_update(self.ema, [p.detach() for p in self.params], decay)
        self.step += 1
        return {"step": self.step, "loss": float(loss.detach()), "lr": lr, "grad_norm": float(grad_norm)}

    # -- EMA weights as a standalone model
    def ema_modules(self) -> tuple[nn.Module, PromptEncoder]:
        unet, encoder = build_model(self.unet_config, self.prompt_config)
        with torch.no_grad():
            for p, e in zip([p for m in (unet, encoder) for p in m.parameters()], self.ema):
                p.copy_(e)
        return unet.eval().requires_grad_(False), encoder.eval().requires_grad_(False)


LOG_FIELDS = ["step", "loss", "lr", "grad_norm", "seconds"]


def _read_log(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def export_checkpoint(unet: nn.Module, encoder: nn.Module, config: dict, log_path: Path, dest: Path) -> Path:
    """Write toy.safetensors (+ toy.json, train_log.csv, loss.png) into ``dest``."""
    from safetensors.torch import save_file

    dest.mkdir(parents=True, exist_ok=True)
    weights = dest / "toy.safetensors"
    _write_atomic(weights, lambda p: save_file(_combined_state(unet, encoder), str(p), metadata={"format": "motiongrid-toy/1"}))
    config = {**config, "parameters": count_parameters(unet, encoder), "sha256": sha256_file(weights)}
    _write_atomic(dest / "toy.json", lambda p: p.write_text(json.dumps(config, indent=2, default=list) + "\n"))
    if log_path.exists() and log_path.resolve() != (dest / "train_log.csv").resolve():
        shutil.copyfile(log_path, dest / "train_log.csv")
    plot_loss(_read_log(log_path), dest / "loss.png")
    return weights


def plot_loss(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        return
    steps = np.array([int(r["step"]) for r in rows])
    loss = np.array([float(r["loss"]) for r in rows])
    window = max(1, min(100, len(loss) // 20))
    smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(steps, loss, color="0.8", lw=0.6, label="per step")
    ax.plot(steps[window - 1:], smooth, color="C0", lw=1.5, label=f"mean of {window}")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("v-prediction MSE")
    ax.set_title("toy model training loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def train_loop(trainer, steps: int, log_path: Path, *, resume: bool, max_minutes: float | None,
               stop_after: int | None, progress: bool, label: str,
               evaluate: Callable[[], None] | None = None) -> tuple[str, list[float]]:
    """The loop every toy trainer shares: resume from ``trainer.ckpt_path``, one CSV row per
    step, checkpoints every ``trainer.cfg.checkpoint_every`` steps (and at the end unless
    interrupted), an optional evaluation every ``eval_every`` steps. The trainer provides
    ``step``, ``cfg``, ``ckpt_path``, ``train_step()``, ``save_checkpoint()``,
    ``load_checkpoint()``. Returns (why it stopped: steps | time | interrupted, losses)."""
    if resume and trainer.ckpt_path.exists():
        trainer.load_checkpoint()
        # drop log rows written after the checkpoint: those steps are redone identically
        rows = [r for r in _read_log(log_path) if int(r["step"]) <= trainer.step]
    else:
        rows = []
    with open(log_path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=LOG_FIELDS)
        w.writeheader()
        w.writerows(rows)
    cfg = trainer.cfg
    start = time.monotonic()
    first_step = trainer.step
    losses: list[float] = []
    stopped = "steps"
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = [TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
               TextColumn("{task.fields[info]}")]
    with Progress(*columns, disable=not progress) as bar, open(log_path, "a", newline="") as fh:
        task = bar.add_task("train", total=steps, completed=trainer.step, info="")
        writer = csv.DictWriter(fh, fieldnames=LOG_FIELDS)
        while trainer.step < steps:
            if max_minutes is not None and time.monotonic() - start > max_minutes * 60:
                stopped = "time"
                break
            if stop_after is not None and trainer.step - first_step >= stop_after:
                stopped = "interrupted"
                break
            t0 = time.monotonic()
            row = trainer.train_step()
            row["seconds"] = round(time.monotonic() - t0, 3)
            losses.append(row["loss"])
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
            fh.flush()
            recent = float(np.mean(losses[-50:]))
            bar.update(task, completed=trainer.step, info=f"loss {recent:.4f} lr {row['lr']:.2e} {row['seconds']:.2f}s/step")
            if trainer.step % cfg.checkpoint_every == 0 or trainer.step == steps:
                trainer.save_checkpoint()
            if evaluate is not None and cfg.eval_every and trainer.step % cfg.eval_every == 0:
                evaluate()
    if stopped != "interrupted" and trainer.step > first_step:
        trainer.save_checkpoint()
    return stopped, losses


def train(out_dir: str | os.PathLike, steps: int = 4000, seed: int = 0, *, resume: bool = True,
          max_minutes: float | None = None, export: str | os.PathLike | None = None,
          config: TrainConfig | None = None, unet_config: dict | None = None,
          clip_options: dict | None = None, prompt_tokens: int = 8, progress: bool = True,
          stop_after: int | None = None) -> dict:
    """Train the toy model into ``out_dir`` (checkpoint.pt, train_log.csv, eval.jsonl, and at the
    end export/ with the EMA weights). Resumes from ``out_dir/checkpoint.pt`` when ``resume``.

    ``steps`` sets the schedule (warm-up + cosine decay); ``max_minutes`` stops earlier (the
    export still happens); ``stop_after`` stops after that many steps in this call without
    exporting (tests use it to interrupt a run). Returns a summary dict."""
    cfg = config or TrainConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clip_options = {**TOY_CLIP_OPTIONS, **(clip_options or {})}
    unet_config = unet_config or default_unet_config(clip_options["size"], clip_options["frames"])
    trainer = _Trainer(out, steps, seed, cfg, unet_config, clip_options, prompt_tokens)
    log_path = out / "train_log.csv"
    start = time.monotonic()
    stopped, losses = train_loop(trainer, steps, log_path, resume=resume, max_minutes=max_minutes,
                                 stop_after=stop_after, progress=progress, label="toy train",
                                 evaluate=lambda: _log_eval(trainer, out))
    summary = {"step": trainer.step, "steps": steps, "stopped": stopped, "losses": losses,
               "minutes": (time.monotonic() - start) / 60}
    if stopped == "interrupted":
        return summary
    unet, encoder = trainer.ema_modules()
    cfgd = trainer.config_dict()
    cfgd["train"]["trained_steps"] = trainer.step
    dests = [out / "export"] + ([Path(export)] if export else [])
    for dest in dests:
        export_checkpoint(unet, encoder, cfgd, log_path, dest)
    summary["exported"] = [str(d) for d in dests]
    return summary


def _log_eval(trainer: _Trainer, out: Path) -> None:
    """Sample-quality numbers of the current EMA weights (one batch of 4 prompts)."""
    unet, encoder = trainer.ema_modules()
    opts = trainer.opts
    backbone = ToyBackbone(model_id="toy-train", unet=unet, scheduler=make_ddim_scheduler(trainer.schedule),
                           num_frames=opts.frames, height=opts.size, width=opts.size,
                           device=torch.device("cpu"), dtype=torch.float32, fingerprint={},
                           prompt_encoder=encoder)
    if not all(c in opts.colours for c, _ in QUALITY_PROMPTS):
        return
    report = quality_report(backbone, seeds=(0,))
    with open(out / "eval.jsonl", "a") as fh:
        fh.write(json.dumps({"step": trainer.step, **report}) + "\n")


def export_run(run_dir: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Export the EMA weights of ``run_dir/checkpoint.pt`` (e.g. a run stopped early)."""
    run = Path(run_dir)
    ckpt = run / "checkpoint.pt"
    if not ckpt.exists():
        raise FileNotFoundError(f"{ckpt} not found: is {run} a `motiongrid toy train` output folder?")
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    config = state["config"]
    unet, encoder = build_model(config["unet"], config["prompt_encoder"])
    with torch.no_grad():
        for p, e in zip([p for m in (unet, encoder) for p in m.parameters()], state["ema"]):
            p.copy_(e)
    config["train"]["trained_steps"] = int(state["step"])
    return export_checkpoint(unet, encoder, config, run / "train_log.csv", Path(dest))


