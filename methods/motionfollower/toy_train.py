"""Training the toy MotionFollower (``motiongrid toy train-edit``): the shipped toy UNet
fine-tuned together with toy pose and reference controllers on toy editing pairs.

A pair is a toy clip (the source, fed to ReCtr frame by frame, and whose prompt is the
appearance context) and a target trajectory from the same start; the model learns to denoise
the ground truth (the same object along the target trajectory) given the target's toy poses
(PoCtr). A share of pairs keeps the source motion (target = source), the reconstruction
branch's case. v-prediction loss on the toy model's own noise schedule; 10 % of contexts are
zeroed (the unconditional input, as the released model's CFG uses zeros).

Deterministic and resumable like ``motiongrid toy train``: everything random in step k comes
from generators seeded by (seed, k); the loop, log and checkpoints are the toy trainer's.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from motiongrid.bench.hashing import sha256_file
from motiongrid.bench.toyworld import PRESETS, Scene, random_spec, target_spec
from motiongrid.bench.video import to_minus_one_one
from motiongrid.methods.motionfollower.hooks import controlled
from motiongrid.methods.motionfollower.model import toy_controllers
from motiongrid.methods.toy.model import count_parameters, load_toy, toy_shapes_options
from motiongrid.methods.toy.train import _ema_update, _lr_at, _read_log, _step_generators, _write_atomic, plot_loss, train_loop

FORMAT = "motiongrid-toy-motionfollower/1"


@dataclass
class EditTrainConfig:
    batch_size: int = 8
    lr: float = 2e-4                  # the fine-tuned UNet
    controller_lr_scale: float = 5.0  # controllers start from scratch: a larger step
    min_lr_fraction: float = 0.1
    warmup_steps: int = 100
    grad_clip: float = 1.0
    ema_decay: float = 0.995
    context_dropout: float = 0.1
    same_motion: float = 0.25         # share of pairs whose target is the source motion
    checkpoint_every: int = 100
    eval_every: int = 0


class EditTrainer:
    def __init__(self, out: Path, steps: int, seed: int, cfg: EditTrainConfig):
        from diffusers import DDPMScheduler

        self.out, self.steps, self.seed, self.cfg = out, steps, seed, cfg
        base_unet, self.encoder, self.base_config, base_path = load_toy(None, "cpu")
        self.base_sha256 = sha256_file(base_path)
        self.opts = toy_shapes_options(**{**PRESETS["edit"], "edit": True})
        self.noise = DDPMScheduler(**self.base_config["schedule"])
        torch.manual_seed(seed)                       # controllers' initial weights
        self.unet = base_unet.requires_grad_(True).train()
        self.pose, self.reference = toy_controllers(self.base_config["unet"])
        self.modules = {"unet": self.unet, "pose_controller": self.pose, "reference_controller": self.reference}
        self.params = [p for m in self.modules.values() for p in m.parameters()]
        self.ema = [p.detach().clone() for p in self.params]
        n_unet = sum(1 for _ in self.unet.parameters())
        self.opt = torch.optim.AdamW([{"params": self.params[:n_unet], "scale": 1.0},
                                      {"params": self.params[n_unet:], "scale": cfg.controller_lr_scale}], lr=cfg.lr)
        self.step = 0

    @property
    def ckpt_path(self) -> Path:
        return self.out / "checkpoint.pt"

    def config_dict(self) -> dict:
        return {"format": FORMAT, "base_sha256": self.base_sha256, "sampling_steps": 25, "cfg": 1.0,
                "clip_options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self.opts).items()},
                "train": {**asdict(self.cfg), "seed": self.seed, "steps": self.steps}}

    def state(self, tensors) -> dict[str, torch.Tensor]:
        out, i = {}, 0
        for name, module in self.modules.items():
            for key, _ in module.named_parameters():
                out[f"{name}.{key}"] = tensors[i].detach().float().contiguous().cpu()
                i += 1
            for key, buf in module.named_buffers():
                out[f"{name}.{key}"] = buf.detach().float().contiguous().cpu()
        return out

    def save_checkpoint(self) -> None:
        state = {"step": self.step, "params": [p.detach().clone() for p in self.params],
                 "ema": [e.clone() for e in self.ema], "optimizer": self.opt.state_dict(),
                 "config": self.config_dict(), "rng": {"scheme": "per-step (seed, step)", "seed": self.seed}}
        _write_atomic(self.ckpt_path, lambda p: torch.save(state, p))

    def load_checkpoint(self) -> None:
        state = torch.load(self.ckpt_path, map_location="cpu", weights_only=False)
        saved, mine = state["config"], self.config_dict()
        for key in ("base_sha256", "clip_options"):
            if saved[key] != mine[key]:
                raise ValueError(f"cannot resume from {self.ckpt_path}: its {key} differs from this run's")
        if saved["train"]["seed"] != self.seed:
            raise ValueError(f"cannot resume from {self.ckpt_path}: trained with seed {saved['train']['seed']}, not {self.seed}")
        with torch.no_grad():
            for p, s in zip(self.params, state["params"]):
                p.copy_(s)
            for e, s in zip(self.ema, state["ema"]):
                e.copy_(s)
        self.opt.load_state_dict(state["optimizer"])
        self.step = int(state["step"])

    def batch(self, rng: np.random.Generator):
        """(x0 ground truth, source frames, target poses) as (B, F, 3, H, W) and the prompts."""
        gts, sources, poses, prompts = [], [], [], []
        for _ in range(self.cfg.batch_size):
            spec = random_spec(rng, self.opts)
            target = spec if rng.random() < self.cfg.same_motion else target_spec(rng, spec, self.opts)
            sources.append(Scene(spec, self.opts).render())
            scene = Scene(target, self.opts)
            gts.append(scene.render())
            poses.append(scene.poses())
            prompts.append("" if rng.random() < self.cfg.context_dropout else spec.prompt())
        return torch.stack(gts), torch.stack(sources), torch.stack(poses), prompts

    def forward_loss(self, gt, source, poses, prompts, gen: torch.Generator) -> torch.Tensor:
        b, f = gt.shape[:2]
        x0 = to_minus_one_one(gt).permute(0, 2, 1, 3, 4)                 # (B, 3, F, H, W)
        t = torch.randint(0, self.noise.config.num_train_timesteps, (b,), generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        xt = self.noise.add_noise(x0, noise, t)
        target = self.noise.get_velocity(x0, noise, t)
        with torch.no_grad():
            ctx = self.encoder([p or "a" for p in prompts])
        keep = torch.tensor([bool(p) for p in prompts], dtype=ctx.dtype)[:, None, None]
        context = (ctx * keep).repeat_interleave(f, dim=0)                # dropped: zeros
        pose = self.pose(poses.flatten(0, 1))
        refs = list(self.reference(to_minus_one_one(source.flatten(0, 1))))
        with controlled(self.unet, pose, refs):
            pred = self.unet(xt, t, encoder_hidden_states=context).sample
        return torch.nn.functional.mse_loss(pred, target)

    def train_step(self) -> dict:
        rng, gen = _step_generators(self.seed, self.step)
        gt, source, poses, prompts = self.batch(rng)
        lr = _lr_at(self.step, self.steps, self.cfg)
        for group in self.opt.param_groups:
            group["lr"] = lr * group["scale"]
        loss = self.forward_loss(gt, source, poses, prompts, gen)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip)
        self.opt.step()
        decay = min(self.cfg.ema_decay, (1 + self.step) / (10 + self.step))
        _ema_update(self.ema, [p.detach() for p in self.params], decay)
        self.step += 1
        return {"step": self.step, "loss": float(loss.detach()), "lr": lr, "grad_norm": float(grad_norm)}


def export_edit_checkpoint(trainer: EditTrainer, log_path: Path, dest: Path) -> Path:
    """toy-motionfollower.safetensors (EMA weights) + .json, train_log.csv, loss.png."""
    from safetensors.torch import save_file

    dest.mkdir(parents=True, exist_ok=True)
    file = dest / "toy-motionfollower.safetensors"
    _write_atomic(file, lambda p: save_file(trainer.state(trainer.ema), str(p), metadata={"format": FORMAT}))
    config = {**trainer.config_dict(), "trained_steps": trainer.step,
              "parameters": {name: count_parameters(m) for name, m in trainer.modules.items()},
              "sha256": sha256_file(file)}
    _write_atomic(file.with_suffix(".json"), lambda p: p.write_text(json.dumps(config, indent=2) + "\n"))
    if log_path.resolve() != (dest / "train_log.csv").resolve():
        (dest / "train_log.csv").write_text(log_path.read_text())
    plot_loss(_read_log(log_path), dest / "loss.png")
    return file


def train_edit(out_dir: str | os.PathLike, steps: int = 1500, seed: int = 0, *, resume: bool = True,
               max_minutes: float | None = None, export: str | os.PathLike | None = None,
               config: EditTrainConfig | None = None, progress: bool = True, stop_after: int | None = None) -> dict:
    """Fine-tune the toy MotionFollower into ``out_dir`` (checkpoint.pt, train_log.csv, export/);
    ``export`` also writes the EMA weights there (e.g. methods/motionfollower/checkpoint)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    trainer = EditTrainer(out, steps, seed, config or EditTrainConfig())
    log_path = out / "train_log.csv"
    start = time.monotonic()
    stopped, losses = train_loop(trainer, steps, log_path, resume=resume, max_minutes=max_minutes,
                                 stop_after=stop_after, progress=progress, label="toy train-edit")
    summary = {"step": trainer.step, "steps": steps, "stopped": stopped, "losses": losses,
               "minutes": (time.monotonic() - start) / 60}
    if stopped == "interrupted":
        return summary
    dests = [out / "export"] + ([Path(export)] if export else [])
    summary["exported"] = [str(export_edit_checkpoint(trainer, log_path, d)) for d in dests]
    return summary



def export_edit_run(run_dir: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Export the EMA weights of ``run_dir/checkpoint.pt`` (e.g. a run stopped early)."""
    run = Path(run_dir)
    if not (run / "checkpoint.pt").exists():
        raise FileNotFoundError(f"{run / 'checkpoint.pt'} not found: is {run} a `motiongrid toy train-edit` folder?")
    saved = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)["config"]["train"]
    trainer = EditTrainer(run, saved["steps"], saved["seed"], EditTrainConfig(**{
        k: v for k, v in saved.items() if k in EditTrainConfig.__dataclass_fields__}))
    trainer.load_checkpoint()
    return export_edit_checkpoint(trainer, run / "train_log.csv", Path(dest))
