"""Optical-flow metrics: ``warp_error`` (temporal consistency of an output along a known motion)
and ``dynamic_degree`` (VBench: does the video move at all). Conventions in docs/metrics.md.

Flow sources (option ``flow``; ``preprocessing()`` records the one used):
- ``raft`` — torchvision's ``raft_large`` with the C_T_V1 weights (ported from princeton-vl's
  ``raft-things.pth``, the checkpoint VBench uses), 20 flow updates (VBench's ``iters=20``),
  frames quantised to uint8 then normalised by the weights' own transform, replicate-padded
  to a multiple of 8 (RAFT's InputPadder); frames under 128 px (torchvision's minimum) are
  upsampled by an integer factor first and the flow scaled back. Weights entry ``raft-large-things`` in torch.hub's
  checkpoints folder, loaded with ``load_state_dict`` (never fetched).
- ``farneback`` — OpenCV's dense Farnebäck flow on uint8 grey frames; needs no weights.
- ``gt`` — the exact flow the clip's maker knows (``Clip.flow``: the shapes renderer). It
  describes the REFERENCE: warp_error applies it to the generated video; dynamic_degree has no
  exact flow for a generated video, so there its generated side is estimated by Farnebäck and
  the reference's exact values are reported beside it (``reference_*`` keys).

``warp_error``: flow and occlusion mask come from the reference — for an edit, the
ground-truth edited video (``Clip.scoring_reference``), the motion the output should have; the
source moves differently. For each t, frame t-1 of the GENERATED video is warped to t along
the backward flow (t -> t-1, bilinear) and E_t = sum_p M_t(p) ||V_t(p) - W(V_{t-1})(p)||² /
sum_p M_t(p) (RGB in [0, 1], squared L2 over channels, as Lai et al. 2018). M: estimated flows
keep pixels passing the forward-backward check |b + f(p+b)|² < 0.01(|b|² + |f(p+b)|²) + 0.5
(Sundaram et al. / Ruder et al.); gt flow keeps what the renderer marks visible. Result:
``value`` = mean_t E_t; ``reference`` = the same for the reference itself (the floor that
interpolation and the flow's own error leave); ``excess`` = value - reference (0 for a copy of
the reference); ``masked`` = fraction of pixels left out.

``dynamic_degree`` (VBench): frames subsampled to about 8 fps (every round(fps/8)-th), flow
between consecutive frames, per pair the mean of the top 5 % flow magnitudes (at least one
pixel); a pair moves when that exceeds max(1, 8/fps) * 6 * min(H, W) / 256 px; the video is
dynamic when at least round(4 * n_frames / 16) pairs move. Per cell: ``magnitude`` (mean over
pairs, px) and ``dynamic`` (0/1); per label (``score_set``): ``degree`` = fraction of dynamic
videos, VBench's number.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F

from motiongrid.bench import weights
from motiongrid.bench.clip import Clip
from motiongrid.bench.registry import metrics
from motiongrid.bench.video import Video, to_uint8, to_uint8_hwc
from motiongrid.metrics._common import BaseMetric, align, reference_settings
from motiongrid.metrics.options import DynamicDegreeOptions, WarpErrorOptions

RAFT_WEIGHT = "raft-large-things"
RAFT_UPDATES = 20
RAFT_MIN_SIDE = 128
FARNEBACK = dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)

# ---- flow and warping ------------------------------------------------------------------------

def warp(images: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``images`` (N, C, H, W) at p + flow(p) (flow (N, 2, H, W) in pixels, (dx, dy)),
    bilinear, borders repeated: the backward warp that brings frame t-1 onto frame t."""
    n, _, h, w = images.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=flow.dtype), torch.arange(w, dtype=flow.dtype), indexing="ij")
    gx = (xs + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    return F.grid_sample(images, torch.stack([gx, gy], -1), mode="bilinear", padding_mode="border",
                         align_corners=True)


def fb_consistent(backward: torch.Tensor, forward: torch.Tensor) -> torch.Tensor:
    """(N, H, W) bool: pixels whose backward flow is undone by the forward flow found where it
    points (Sundaram et al. 2010; the occlusion test of Ruder et al. and Lai et al.)."""
    f_at = warp(forward, backward)
    mismatch = ((backward + f_at) ** 2).sum(1)
    return mismatch < 0.01 * ((backward ** 2).sum(1) + (f_at ** 2).sum(1)) + 0.5


def top_magnitude(flow: torch.Tensor, fraction: float = 0.05) -> torch.Tensor:
    """(N,) mean of the top ``fraction`` of per-pixel flow magnitudes (at least one pixel)."""
    mag = flow.double().norm(dim=1).flatten(1)
    k = max(1, int(mag.shape[1] * fraction))
    return mag.topk(k, dim=1).values.mean(1)


def vbench_sampling(fps: float, frames: int) -> int:
    """VBench reads videos at about 8 fps: keep every round(fps/8)-th frame."""
    return max(1, round(fps / 8.0)) if frames > 2 else 1


def vbench_dynamic(magnitudes: torch.Tensor, n_frames: int, height: int, width: int, fps: float) -> bool:
    thres = max(1.0, 8.0 / fps) * 6.0 * min(height, width) / 256.0
    need = round(4 * n_frames / 16.0)
    return int((magnitudes > thres).sum()) >= need


def farneback(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """(N, 2, H, W) flow from each frame of ``first`` to the same index of ``second``."""
    import cv2

    a = [cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) for img in to_uint8_hwc(first)]
    b = [cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) for img in to_uint8_hwc(second)]
    out = [cv2.calcOpticalFlowFarneback(x, y, None, **FARNEBACK) for x, y in zip(a, b)]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float()


_RAFT: dict[str, torch.nn.Module] = {}


def load_raft(device: torch.device) -> torch.nn.Module:
    """RAFT-large built by torchvision, state dict from the manager's file (a torchvision
    ``weights=`` argument would download when the file is absent)."""
    key = str(device)
    if key not in _RAFT:
        from torchvision.models.optical_flow import raft_large

        model = raft_large(weights=None, progress=False)
        state = torch.load(weights.require(RAFT_WEIGHT), map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        _RAFT[key] = model.eval().to(device)
    return _RAFT[key]


@torch.no_grad()
def raft(model: torch.nn.Module, first: torch.Tensor, second: torch.Tensor, device: torch.device,
         batch_size: int = 8) -> torch.Tensor:
    from torchvision.models.optical_flow import Raft_Large_Weights

    transform = Raft_Large_Weights.C_T_V1.transforms()
    h, w = first.shape[2:]
    # torchvision's RAFT refuses inputs under 128 px (its correlation pyramid); smaller frames
    # are upsampled by an integer factor and the flow scaled back (recorded in preprocessing)
    up = raft_upscale(h, w)
    hu, wu = h * up, w * up
    ph, pw = (-hu) % 8, (-wu) % 8
    pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)   # RAFT's InputPadder: centred, replicate
    out = []
    for s in range(0, len(first), batch_size):
        a, b = transform(to_uint8(first[s:s + batch_size]), to_uint8(second[s:s + batch_size]))
        if up > 1:
            a, b = (F.interpolate(x, size=(hu, wu), mode="bilinear", align_corners=False) for x in (a, b))
        a, b = (F.pad(x.to(device), pad, mode="replicate") for x in (a, b))
        flow = model(a, b, num_flow_updates=RAFT_UPDATES)[-1].float().cpu()
        flow = flow[:, :, pad[2]:pad[2] + hu, pad[0]:pad[0] + wu]
        if up > 1:
            flow = F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False, antialias=True) / up
        out.append(flow)
    return torch.cat(out)


def raft_upscale(h: int, w: int) -> int:
    return max(1, -(-RAFT_MIN_SIDE // min(h, w)))


def exact_flow(metric: str, clip: Clip, shape: torch.Size) -> tuple[torch.Tensor, torch.Tensor]:
    """The clip's exact backward flow and its validity, checked against the frames' shape."""
    if clip.flow is None:
        raise ValueError(f"{metric} (flow gt): clip {clip.id!r} carries no exact flow (only the shapes clip set "
                         f"does); use flow 'raft' or 'farneback'")
    flow, valid = clip.flow()
    want = (shape[0] - 1, 2, shape[2], shape[3])
    if tuple(flow.shape) != want:
        raise ValueError(f"{metric} (flow gt): clip {clip.id!r}'s exact flow is {tuple(flow.shape)} but the videos "
                         f"need {want}; gt flow cannot be resampled, so the generated video must have the "
                         f"reference's frame count and size")
    return flow.float(), valid.bool()


class _FlowMetric(BaseMetric):
    """What both flow metrics share: choosing, loading and running the flow estimator."""

    def estimator(self) -> str:
        return "farneback" if self.opts.flow == "gt" else self.opts.flow

    def available(self) -> str | None:
        if self.estimator() == "raft":
            reason = weights.available(RAFT_WEIGHT)
            return f"{self.name} (flow raft): {reason}" if reason else None
        try:
            import cv2  # noqa: F401
        except ImportError:
            return f"{self.name} (flow farneback): OpenCV is missing. Fix: `pip install opencv-python-headless`"
        return None

    def load(self) -> None:
        self.model = load_raft(self.device) if self.estimator() == "raft" else None

    def estimate(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        self.ensure_prepared()
        if self.estimator() == "raft":
            return raft(self.model, first, second, self.device, self.options["batch_size"])
        return farneback(first, second)

    def estimator_settings(self) -> dict:
        if self.estimator() == "raft":
            return {"estimator": "raft", "model": "torchvision raft_large C_T_V1", "flow_updates": RAFT_UPDATES,
                    "input": "uint8 -> Raft_Large_Weights.C_T_V1.transforms() ([-1, 1])",
                    "padding": "replicate to a multiple of 8, centred",
                    "small_frames": f"under {RAFT_MIN_SIDE} px: upsampled by ceil({RAFT_MIN_SIDE}/min(H, W)) "
                                    "(bilinear), flow resized back and divided by the factor"}
        return {"estimator": "farneback", "frames": "uint8 grey (to_uint8_hwc + cv2 RGB2GRAY)", **FARNEBACK}


@metrics.register("warp_error")
class WarpError(_FlowMetric):
    description = ("flow warping error: masked squared RGB error between each generated frame and the previous "
                   "one warped along the reference's flow (raft, farneback or exact gt); reference floor and excess")
    higher_is_better = False
    needs = frozenset({"reference"})
    ideal = {"excess": 0.0}

    Options = WarpErrorOptions

    def preprocessing(self) -> dict:
        flow = self.opts.flow
        return {"flow": flow, "flow_from": "the scoring reference (ground-truth edit for edit cells)",
                "flow_source": {"estimator": "gt", "mask": "renderer visibility"} if flow == "gt"
                else {**self.estimator_settings(), "mask": "forward-backward consistency (0.01, 0.5)"},
                "warp": "backward, bilinear, border", "error": "mean over t of masked mean squared L2 (RGB [0,1])",
                "resample": self.options["resample"]}

    def reference_flow(self, reference: torch.Tensor, clip: Clip, settings: dict) -> tuple[torch.Tensor, torch.Tensor]:
        if self.opts.flow == "gt":
            return exact_flow(self.name, clip, reference.shape)

        def compute() -> dict:
            backward = self.estimate(reference[1:], reference[:-1])
            forward = self.estimate(reference[:-1], reference[1:])
            return {"flow": backward, "valid": fb_consistent(backward, forward)}
        got = self.cache.get_or_compute(clip.content_hash, f"flow-{self.opts.flow}",
                                        {**self.estimator_settings(), **settings}, compute)
        return got["flow"], got["valid"].bool()

    def score(self, generated: Video, clip: Clip) -> dict[str, float]:
        self.ensure_prepared()
        pair = align(self.name, generated, clip, self.options["resample"])
        if pair.generated.shape[0] < 2:
            raise ValueError(f"warp_error: needs at least 2 frames, got {pair.generated.shape[0]}")
        flow, valid = self.reference_flow(pair.reference, clip, reference_settings(pair))
        if not valid.any():
            raise ValueError(f"warp_error: no pixel of clip {clip.id!r} keeps a consistent flow; nothing to compare")
        mask = valid.double()

        def error(frames: torch.Tensor) -> float:
            diff = ((frames[1:].double() - warp(frames[:-1].float(), flow).double()) ** 2).sum(1)
            per_t = (diff * mask).sum((1, 2)) / mask.sum((1, 2)).clamp(min=1)
            return float(per_t[mask.sum((1, 2)) > 0].mean())
        value, floor = error(pair.generated), error(pair.reference)
        return {"value": value, "reference": floor, "excess": value - floor,
                "masked": float(1.0 - valid.double().mean())}


@metrics.register("dynamic_degree")
class DynamicDegree(_FlowMetric):
    description = ("VBench dynamic degree: mean top-5% flow magnitude per frame pair, thresholded by resolution; "
                   "per cell magnitude and dynamic (0/1), per label the fraction of dynamic videos")
    higher_is_better = True
    needs = frozenset()
    set_level = True

    Options = DynamicDegreeOptions

    def check_options(self) -> None:
        super().check_options()
        if self.opts.flow == "gt":
            self.needs = frozenset({"reference"})

    def preprocessing(self) -> dict:
        out = {"flow": self.opts.flow, "generated_flow": self.estimator_settings(),
               "sampling": "every round(fps/8)-th frame", "statistic": "mean of top 5% magnitudes per pair",
               "threshold": "max(1, 8/fps) * 6 * min(H, W) / 256 px", "moving_pairs": "round(4 * frames / 16)"}
        if self.opts.flow == "gt":
            out["reference_flow"] = "exact (clip flow), all pixels"
        return out

    def judge(self, flows: torch.Tensor, n_frames: int, h: int, w: int, fps: float) -> dict[str, float]:
        mags = top_magnitude(flows)
        return {"magnitude": float(mags.mean()), "dynamic": float(vbench_dynamic(mags, n_frames, h, w, fps))}

    def score(self, generated: Video, clip: Clip) -> dict[str, float]:
        frames = generated.frames
        if frames.shape[0] < 2:
            raise ValueError(f"dynamic_degree: needs at least 2 frames, got {frames.shape[0]}")
        step = vbench_sampling(generated.fps, frames.shape[0])
        kept = frames[::step]
        h, w = frames.shape[2:]
        out = self.judge(self.estimate(kept[:-1], kept[1:]), len(kept), h, w, generated.fps)
        if self.opts.flow == "gt":
            ref = clip.video
            flow, _ = exact_flow(self.name, clip, ref.frames.shape)
            if step > 1:
                raise ValueError(f"dynamic_degree (flow gt): clip {clip.id!r} at {ref.fps} fps would be subsampled, "
                                 f"which the exact frame-to-frame flow cannot follow; use flow 'raft'")
            ref_out = self.judge(flow, ref.frames.shape[0], *ref.frames.shape[2:], ref.fps)
            out.update({f"reference_{k}": v for k, v in ref_out.items()})
        return out

    def score_set(self, pairs: Iterable[tuple[Video, Clip]]) -> dict[str, float]:
        cells = [self.score(video, clip) for video, clip in pairs]
        if not cells:
            raise ValueError("dynamic_degree: score_set got no videos")
        out = {"degree": float(np.mean([c["dynamic"] for c in cells])), "n_videos": float(len(cells))}
        if self.opts.flow == "gt":
            out["reference_degree"] = float(np.mean([c["reference_dynamic"] for c in cells]))
        return out
