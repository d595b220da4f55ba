"""``motiongrid profile``: memory and time of each method variant at real size, before anyone
owns the weights. Shape-only: random weights, no quality numbers, never stored as results.

For every method variant of a grid the method builds its real architectures with random weights
(``Method.shape_only``) and runs one cell's work exactly as ``generate`` does (all steps,
guidance, branches, replays), on a synthetic clip of the requested size:
- ``estimate``: on torch's meta device under :class:`MemoryEstimator` — peak bytes with their
  breakdown and stage, on any machine, in seconds (no arithmetic is done);
- measured (``--device cuda``): real tensors on the GPU, ``max_memory_allocated`` /
  ``max_memory_reserved`` reset per variant, and the wall time of the cell and per step;
  ``--device cpu`` measures time on the CPU only when asked (slow at real size).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import torch

from motiongrid.bench.api import Method, ShapeSpec
from motiongrid.bench.clip import Clip
from motiongrid.bench.config import ConfigError, RunConfig
from motiongrid.bench.errors import UserError
from motiongrid.bench.grid import MethodVariant, expand_methods
from motiongrid.bench.memory_estimate import CANNOT_KNOW, MemoryEstimator
from motiongrid.bench.video import Video

LABEL = "shape-only: random weights at real size, no quality numbers"
DTYPES = {"fp16": torch.float16, "fp32": torch.float32, "bf16": torch.bfloat16}
GIB = 1024 ** 3


class NotProfilable(UserError):
    """A method that cannot build its real-size architecture; the message says why."""


@dataclass
class VariantProfile:
    label: str
    method: str
    mode: str                                 # "estimate" | "measured"
    device: str
    dtype: str
    frames: int
    height: int
    width: int
    parameters: int | None = None
    architecture: str = ""
    peak_bytes: int | None = None             # estimate: live bytes at the peak; measured: max allocated
    reserved_bytes: int | None = None         # measured only: max reserved by the caching allocator
    peak_stage: str | None = None
    weights_bytes: int | None = None
    held_bytes: int | None = None
    working_bytes: int | None = None
    stages: list[str] = field(default_factory=list)
    seconds_per_cell: float | None = None
    seconds_per_step: float | None = None
    steps: int | None = None                  # denoising steps a real cell runs
    sampled_steps: int | None = None          # steps the profile ran (None: all)
    note: str | None = None                   # why a variant has no numbers (e.g. a baseline without a model)
    error: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def parse_size(text: str) -> tuple[int, int]:
    """"512x512" / "320x576" (HxW) -> (height, width); one clear error otherwise."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        h, w = (int(p) for p in parts)
    except ValueError:
        raise UserError(f"--size {text!r}: expected HxW in pixels, e.g. 512x512") from None
    if h <= 0 or w <= 0 or h % 8 or w % 8:
        raise UserError(f"--size {text!r}: height and width must be positive multiples of 8")
    return h, w


def synthetic_clip(frames: int, height: int, width: int, device: torch.device, edit: bool) -> Clip:
    """A clip of the right shape whose pixels do not matter (meta tensors when estimating)."""
    def video() -> Video:
        return Video(torch.zeros(frames, 3, height, width, device=device), 8.0)

    return Clip(id=f"shape-only-{frames}x{height}x{width}", prompt="a person walking on a beach",
                loader=video, source_hash=f"shape-only:{frames}x{height}x{width}",
                meta={"shape_only": True, "edit": edit})


def profile_variant(variant: MethodVariant, spec: ShapeSpec, estimate: bool) -> VariantProfile:
    out = VariantProfile(variant.label, variant.method, "estimate" if estimate else "measured",
                         str(spec.device), spec.dtype_name, spec.frames, spec.height, spec.width)
    method: Method = variant.method_cls()
    method.prepare(torch.device("meta") if estimate else spec.device)
    build_device = torch.device("meta") if estimate else spec.device
    try:
        with torch.device(build_device):
            built = method.shape_only(variant.params, spec)
    except NotImplementedError as exc:
        out.note = f"not profiled: {exc or type(method).__name__ + ' builds no real-size architecture'}"
        return out
    out.parameters = sum(p.numel() for m in built.modules for p in m.parameters())
    out.architecture = built.description
    out.steps, out.sampled_steps = built.steps, built.sampled_steps
    params = built.params or variant.params
    clip = built.clip or synthetic_clip(spec.frames, spec.height, spec.width, build_device, variant.method_cls.task == "edit")
    if estimate:
        est = MemoryEstimator()
        est.add_weights(built.modules)
        with est:
            method.generate(clip, params, 0)
        out.peak_bytes, out.peak_stage = est.peak.bytes, est.peak.stage
        out.weights_bytes, out.held_bytes, out.working_bytes = est.peak.weights, est.peak.held, est.peak.working
        out.stages = est.stages_seen
        return out
    sync = torch.cuda.synchronize if spec.device.type == "cuda" else (lambda: None)
    if spec.device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(spec.device)
    sync()
    start = time.perf_counter()
    method.generate(clip, params, 0)
    sync()
    elapsed = time.perf_counter() - start
    ran = built.sampled_steps or built.steps
    if ran:
        # extrapolated when steps were sampled: the cell's time scaled by the steps a cell runs
        # (extraction and decode are scaled too, so this errs high by their share)
        out.seconds_per_step = elapsed / ran
        out.seconds_per_cell = elapsed * built.steps / ran
    else:
        out.seconds_per_cell = elapsed
    if spec.device.type == "cuda":
        out.peak_bytes = torch.cuda.max_memory_allocated(spec.device)
        out.reserved_bytes = torch.cuda.max_memory_reserved(spec.device)
    return out


def profile_grid(config: RunConfig, source: str, frames: int | None, size: tuple[int, int] | None,
                 dtype: str, device: str, estimate: bool, sample_steps: int | None = 2) -> list[VariantProfile]:
    if dtype not in DTYPES:
        raise UserError(f"--dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device here; use --estimate (works anywhere) or --device cpu")
    variants = expand_methods(config, source)
    shape = config.clips.options
    frames = frames or int(shape.get("frames", 16))
    if size is None:
        side = shape.get("size")
        size = (int(side), int(side)) if side else (512, 512)
    if frames <= 0:
        raise ConfigError(f"--frames {frames}: expected a positive number of frames")
    spec = ShapeSpec(frames, size[0], size[1], DTYPES[dtype], dtype, torch.device(device), sample_steps)
    results = []
    for variant in variants:
        try:
            results.append(profile_variant(variant, spec, estimate))
        except (UserError, ValueError, RuntimeError) as exc:   # one variant's failure is its row
            row = VariantProfile(variant.label, variant.method, "estimate" if estimate else "measured",
                                 device, dtype, spec.frames, spec.height, spec.width)
            row.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
            results.append(row)
    return results


def report(results: list[VariantProfile]) -> dict:
    """What --json writes: the rows, the label and what the estimate cannot know."""
    return {"label": LABEL, "cannot_know": list(CANNOT_KNOW), "variants": [r.as_dict() for r in results]}
