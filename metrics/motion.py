"""``motion_fidelity``: how well the generated video's point motion matches the reference's
(DMT's motion-fidelity score, docs/metrics.md), from point tracks.

Score. For each track, frame-to-frame displacements d_t = x_{t+1} - x_t. A displacement is
*static* when |d_t| < ``static_px`` (default 0.5 px at the tracked resolution); otherwise it is
normalised to unit length. Per frame step, two tracks agree by:

    both moving: cos(d_n, d_m)      both static: 1      one static, one moving: 0

(no division by zero, so no NaN: a point at rest agrees with a point at rest, and a point that
moves does not agree with one that does not). A step counts only when both tracks are visible
at t and t+1. sim(n, m) = mean of the counted steps; pairs with no counted step are left out,
and so is a track with no pair.

Result keys:
- ``symmetric`` — the paper's form: ½·[mean_m max_n sim(n,m) + mean_n max_m sim(n,m)].
- ``dmt_one_way`` — DMT's released code: mean over generated tracks m of max over reference
  tracks n of sim(n,m), without the identity matrix the code subtracts (a leftover).
- ``n_reference`` / ``n_generated`` — tracks that entered the score.
- ``paired`` (the headline) — location-aware: generated track k started from the same query
  point as reference track k and is compared with it alone (``paired_fidelity``); DMT's
  best-match-anywhere cannot tell a scene with opposite motions from itself played backwards.
- ``endpoint_error`` (lower is better) / ``n_paired`` — paired positions' mean distance over
  the frame diagonal / pairs that entered.
Identical motion gives 1; exactly opposite motion gives -1.

Trackers (option ``tracker``; ``preprocessing()`` records the one used):
- ``cotracker`` — CoTracker3 offline via torch.hub from a local repo copy + checkpoint
  (weights ``cotracker-hub-repo`` and ``cotracker3-offline``), ``grid_size``² points on frame 0,
  input 0..255 (``to_0_255``). Never fetched from GitHub at scoring time.
- ``lk`` — OpenCV pyramidal Lucas–Kanade, frame to frame from a ``grid_size``² grid on frame 0,
  no weights. A point is lost (invisible from then on) when LK fails, it leaves the frame, or
  its forward-backward error exceeds ``lk_fb_px``.
- ``gt`` — the reference side uses the clip's ground-truth tracks. A generated video has no
  ground truth, so its side is tracked by the best available tracker (cotracker, else lk)
  FROM THE GROUND-TRUTH FRAME-0 POINTS (those visible at frame 0). Identical videos then score
  ~1 (≥0.95 on the shapes clips), not exactly 1: the tracker's error enters on one side only.
- ``auto`` — cotracker when available, else lk.
Both sides of ``lk``/``cotracker`` use the same tracker and grid, so identical videos give
identical tracks and exactly 1. Reference tracks are cached by clip hash + tracker settings.
"""
from __future__ import annotations

import ast
import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from motiongrid.bench import weights
from motiongrid.bench.clip import Clip
from motiongrid.bench.registry import metrics
from motiongrid.bench.video import Video, to_0_255, to_uint8_hwc
from motiongrid.metrics._common import BaseMetric, align, reference_settings
from motiongrid.metrics.options import MotionFidelityOptions

COTRACKER_WEIGHTS = ("cotracker-hub-repo", "cotracker3-offline")
COTRACKER_ENTRYPOINT = "cotracker3_offline"


# ---- the score -----------------------------------------------------------------------------

def _steps(tracks: torch.Tensor, vis: torch.Tensor, static_px: float):
    """Per frame step (T-1, K): unit displacement (zero when static), moving flag, and whether
    the step counts (visible at t and t+1); flags as float64 for the einsums."""
    tracks = tracks.double()
    d = tracks[1:] - tracks[:-1]                                  # (T-1, K, 2)
    norm = d.norm(dim=-1)
    moving = norm >= static_px
    unit = torch.where(moving[..., None], d / norm.clamp(min=1e-12)[..., None], torch.zeros_like(d))
    vis = vis.bool()
    valid = (vis[1:] & vis[:-1]).double()
    return unit, moving.double(), valid


def _both_steps(ref_tracks, ref_vis, gen_tracks, gen_vis, static_px: float):
    """``_steps`` of both sides, after checking they cover the same >= 2 frames."""
    if ref_tracks.shape[0] != gen_tracks.shape[0]:
        raise ValueError(f"motion_fidelity: reference tracks have {ref_tracks.shape[0]} frames, "
                         f"generated {gen_tracks.shape[0]}")
    if ref_tracks.shape[0] < 2:
        raise ValueError("motion_fidelity: tracks need at least 2 frames")
    return _steps(ref_tracks, ref_vis, static_px), _steps(gen_tracks, gen_vis, static_px)


def track_similarity(ref_tracks: torch.Tensor, ref_vis: torch.Tensor, gen_tracks: torch.Tensor,
                     gen_vis: torch.Tensor, static_px: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """sim (N, M) and a mask (N, M) of defined pairs; rules in the module doc."""
    (ur, mr, vr), (ug, mg, vg) = _both_steps(ref_tracks, ref_vis, gen_tracks, gen_vis, static_px)
    both_moving = torch.einsum("tnd,tmd->nm", ur * (vr * mr)[..., None], ug * (vg * mg)[..., None])
    both_static = torch.einsum("tn,tm->nm", vr * (1 - mr), vg * (1 - mg))
    count = torch.einsum("tn,tm->nm", vr, vg)
    defined = count > 0
    sim = torch.where(defined, (both_moving + both_static) / count.clamp(min=1), torch.zeros_like(count))
    return sim.clamp(-1.0, 1.0), defined


def moving_tracks(tracks: torch.Tensor, vis: torch.Tensor, static_px: float) -> torch.Tensor:
    """(N,) bool: tracks whose mean displacement over visible steps is at least ``static_px``."""
    d = (tracks[1:] - tracks[:-1]).double().norm(dim=-1)
    valid = (vis[1:] & vis[:-1]).double()
    mean = (d * valid).sum(0) / valid.sum(0).clamp(min=1)
    return (mean >= static_px) & (valid.sum(0) > 0)


def motion_fidelity(ref_tracks: torch.Tensor, ref_vis: torch.Tensor, gen_tracks: torch.Tensor,
                    gen_vis: torch.Tensor, static_px: float = 0.5,
                    empty_score: float | None = None) -> dict[str, float]:
    """Both variants of DMT's motion fidelity from (T, N, 2)/(T, N) and (T, M, 2)/(T, M) tracks.
    With no comparable pair: ``empty_score`` if given, else an error."""
    sim, defined = track_similarity(ref_tracks, ref_vis, gen_tracks, gen_vis, static_px)
    masked = torch.where(defined, sim, torch.full_like(sim, -torch.inf))
    gen_ok = defined.any(0)          # generated tracks with at least one defined pair
    ref_ok = defined.any(1)
    if not gen_ok.any() and empty_score is not None:
        return {"symmetric": empty_score, "dmt_one_way": empty_score, "n_reference": 0.0, "n_generated": 0.0}
    if not gen_ok.any():
        raise ValueError("motion_fidelity: no pair of reference and generated tracks is visible over a "
                         "common frame step; nothing to compare")
    best_ref_per_gen = masked.max(0).values[gen_ok]     # max over reference tracks n
    best_gen_per_ref = masked.max(1).values[ref_ok]     # max over generated tracks m
    one_way = float(best_ref_per_gen.mean())
    return {"symmetric": 0.5 * (one_way + float(best_gen_per_ref.mean())), "dmt_one_way": one_way,
            "n_reference": float(ref_ok.sum()), "n_generated": float(gen_ok.sum())}


def paired_fidelity(ref_tracks: torch.Tensor, ref_vis: torch.Tensor, gen_tracks: torch.Tensor,
                    gen_vis: torch.Tensor, frame_hw: tuple[int, int], static_px: float = 0.5,
                    empty_score: float | None = None) -> dict[str, float | None]:
    """The location-aware variant: generated track k started from the same query point as
    reference track k (both (T, N, 2)), so each is compared with its own partner only.

    ``paired``: per pair, the mean over steps both see of DMT's step agreement (cos when both
    move, 1 when both rest, 0 otherwise); mean over pairs with a counted step — sim(n, n) of
    ``track_similarity``. Reversed motion gives -1 wherever the reference moves.
    ``endpoint_error``: mean over pairs and frames t >= 1 both see of |g_t - r_t| / frame
    diagonal (0 = same positions, lower is better). ``n_paired``: pairs with a counted step."""
    if ref_tracks.shape != gen_tracks.shape:
        raise ValueError(f"motion_fidelity: paired tracks differ in shape: reference {tuple(ref_tracks.shape)}, "
                         f"generated {tuple(gen_tracks.shape)}")
    (ur, mr, vr), (ug, mg, vg) = _both_steps(ref_tracks, ref_vis, gen_tracks, gen_vis, static_px)
    agree = (ur * ug).sum(-1) * mr * mg + (1 - mr) * (1 - mg)     # (T-1, N)
    count = (vr * vg).sum(0)
    ok = count > 0
    both = (ref_vis.bool() & gen_vis.bool())[1:]
    dist = (gen_tracks.double() - ref_tracks.double())[1:].norm(dim=-1) / math.hypot(*frame_hw)
    epe = float(dist[both].mean()) if both.any() else None
    if not ok.any():
        if empty_score is None:
            raise ValueError("motion_fidelity: no generated track is visible over a frame step with its "
                             "reference partner; nothing to compare")
        return {"paired": empty_score, "endpoint_error": epe, "n_paired": 0.0}
    per_pair = (agree * vr * vg).sum(0)[ok] / count[ok]
    return {"paired": float(per_pair.clamp(-1.0, 1.0).mean()), "endpoint_error": epe, "n_paired": float(ok.sum())}


# ---- trackers ------------------------------------------------------------------------------

def grid_points(height: int, width: int, grid_size: int) -> torch.Tensor:
    """grid_size² (x, y) points, evenly spaced with half a cell of margin."""
    xs = (torch.arange(grid_size, dtype=torch.float64) + 0.5) * width / grid_size - 0.5
    ys = (torch.arange(grid_size, dtype=torch.float64) + 0.5) * height / grid_size - 0.5
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx.flatten(), yy.flatten()], -1).float()


def lk_track(frames: torch.Tensor, queries: torch.Tensor, win: int = 15, levels: int = 3,
             fb_px: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """OpenCV pyramidal LK from frame-0 ``queries`` (N, 2) through (T, 3, H, W) [0,1] frames.
    Returns tracks (T, N, 2) float32 and visibility (T, N) bool."""
    import cv2

    gray = [cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) for img in to_uint8_hwc(frames)]
    h, w = gray[0].shape
    n = queries.shape[0]
    pts = queries.numpy().astype(np.float32).reshape(-1, 1, 2)
    alive = np.ones(n, dtype=bool)
    tracks = np.zeros((len(gray), n, 2), dtype=np.float32)
    vis = np.zeros((len(gray), n), dtype=bool)
    tracks[0], vis[0] = pts[:, 0], True
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01)
    kw = dict(winSize=(win, win), maxLevel=levels, criteria=criteria)
    for t in range(1, len(gray)):
        nxt, st, _ = cv2.calcOpticalFlowPyrLK(gray[t - 1], gray[t], pts, None, **kw)
        back, st_b, _ = cv2.calcOpticalFlowPyrLK(gray[t], gray[t - 1], nxt, None, **kw)
        fb = np.linalg.norm(back[:, 0] - pts[:, 0], axis=-1)
        inside = (nxt[:, 0, 0] >= 0) & (nxt[:, 0, 0] <= w - 1) & (nxt[:, 0, 1] >= 0) & (nxt[:, 0, 1] <= h - 1)
        ok = st[:, 0].astype(bool) & st_b[:, 0].astype(bool) & (fb < fb_px) & inside & np.isfinite(fb)
        alive &= ok
        pts = np.where(alive[:, None, None], nxt, pts)   # a lost point stays where it was lost
        tracks[t], vis[t] = pts[:, 0], alive
    return torch.from_numpy(tracks), torch.from_numpy(vis)


def _hub_dependencies(repo: Path) -> list[str]:
    """The ``dependencies`` list a torch.hub repo declares in hubconf.py (read, not executed)."""
    try:
        tree = ast.parse((repo / "hubconf.py").read_text())
    except (OSError, SyntaxError):
        return []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "dependencies" for t in node.targets):
            try:
                return [str(x) for x in ast.literal_eval(node.value)]
            except ValueError:
                return []
    return []


def cotracker_available() -> str | None:
    for name in COTRACKER_WEIGHTS:
        reason = weights.available(name)
        if reason:
            return reason
    repo = weights.locate("cotracker-hub-repo")
    missing = [d for d in _hub_dependencies(repo) if importlib.util.find_spec(d) is None]
    if missing:
        return f"CoTracker's hub repo needs {', '.join(missing)}. Fix: `pip install {' '.join(missing)}`"
    return None


_COTRACKER: dict[str, torch.nn.Module] = {}


def load_local_hub(loaded: dict, repo_entry: str, checkpoint_entry: str, entrypoint: str,
                   device: torch.device) -> torch.nn.Module:
    """A torch.hub model from the local repo copy ``repo_entry``; its hubconf loads the
    checkpoint through torch.hub.load_state_dict_from_url, which finds ``checkpoint_entry`` in
    torch.hub's checkpoints folder. Kept in ``loaded`` per device."""
    key = str(device)
    if key not in loaded:
        repo = weights.require(repo_entry)
        weights.require(checkpoint_entry)
        model = torch.hub.load(str(repo), entrypoint, source="local", trust_repo=True)
        loaded[key] = model.eval().to(device)
    return loaded[key]


def load_cotracker(device: torch.device) -> torch.nn.Module:
    return load_local_hub(_COTRACKER, *COTRACKER_WEIGHTS, COTRACKER_ENTRYPOINT, device)


@torch.no_grad()
def cotracker_track(model: torch.nn.Module, frames: torch.Tensor, device: torch.device,
                    grid_size: int | None = None, queries: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    video = to_0_255(frames)[None].to(device)                       # (1, T, 3, H, W) 0..255
    if queries is not None:
        q = torch.cat([torch.zeros(len(queries), 1), queries.float()], -1)[None].to(device)  # (t, x, y)
        tracks, vis = model(video, queries=q)
    else:
        tracks, vis = model(video, grid_size=grid_size)
    vis = vis[0]
    if vis.ndim == 3:  # some versions return (B, T, N, 1)
        vis = vis[..., 0]
    return tracks[0].float().cpu(), (vis > 0.5 if vis.is_floating_point() else vis.bool()).cpu()


# ---- the metric ----------------------------------------------------------------------------

@metrics.register("motion_fidelity")
class MotionFidelity(BaseMetric):
    description = ("motion fidelity from point tracks: paired (location-aware, same start points) and "
                   "DMT's location-agnostic symmetric and one-way variants")
    higher_is_better = True
    ideal = {"symmetric": 1.0, "dmt_one_way": 1.0, "paired": 1.0, "endpoint_error": 0.0}
    needs = frozenset({"reference"})
    Options = MotionFidelityOptions
    # The key a report leads with: DMT's variants match each track with its best partner
    # anywhere in the frame, so a video played backwards scores ~0.95 when the scene holds
    # opposite motions (docs/metrics.md); the paired variant cannot be fooled that way.
    headline = "paired"
    directions = {"endpoint_error": False}
    key_descriptions = {
        "paired": "each generated track vs the reference track from the same start point: direction "
                  "agreement per step (1 same, 0 frozen, -1 reversed)",
        "endpoint_error": "mean distance between paired tracks' positions / frame diagonal (0 = same path)",
        "symmetric": "DMT (paper form): each track vs its best-matching track anywhere in the frame, both ways",
        "dmt_one_way": "DMT (released code): each generated track vs its best-matching reference track",
    }
    # points="moving": score only reference tracks that move (mean step >= static_px) — the
    # role DMT's optional mask box plays. Without it, on a static background every static
    # generated track "agrees" with the background and a frozen video scores like the
    # reference. With gt, the generated side is tracked from those moving points only; with
    # lk/cotracker, generated tracks that do not move are dropped too. If no generated track
    # survives (lost, or nothing moves), the reference motion was not reproduced: score 0.

    def check_options(self) -> None:
        if self.options["tracker"] == "gt":
            self.needs = frozenset({"reference", "tracks"})

    def resolved_tracker(self) -> str:
        if getattr(self, "_tracker", None):  # frozen once prepared
            return self._tracker
        t = self.options["tracker"]
        if t == "auto":
            return "cotracker" if cotracker_available() is None else "lk"
        return t

    def generated_tracker(self) -> str:
        t = self.resolved_tracker()
        if t == "gt":
            return "cotracker" if cotracker_available() is None else "lk"
        return t

    def available(self) -> str | None:
        if self.options["tracker"] == "cotracker":
            reason = cotracker_available()
            return f"motion_fidelity (tracker cotracker): {reason}" if reason else None
        if importlib.util.find_spec("cv2") is None and self.generated_tracker() == "lk":
            return "motion_fidelity (tracker lk): OpenCV is missing. Fix: `pip install opencv-python-headless`"
        return None

    def load(self) -> None:
        self.model = load_cotracker(self.device) if self.generated_tracker() == "cotracker" else None
        self._tracker = self.resolved_tracker()

    def tracker_settings(self, tracker: str) -> dict:
        o = self.options
        if tracker == "lk":
            return {"tracker": "lk", "grid_size": o["grid_size"], "win": o["lk_win"], "levels": o["lk_levels"],
                    "fb_px": o["lk_fb_px"], "frames": "uint8 gray (to_uint8_hwc + cv2 RGB2GRAY)"}
        if tracker == "cotracker":
            return {"tracker": "cotracker", "entrypoint": COTRACKER_ENTRYPOINT, "grid_size": o["grid_size"],
                    "input": "0..255 via to_0_255"}
        return {"tracker": "gt"}

    def preprocessing(self) -> dict:
        ref = self.resolved_tracker()
        out = {"tracker": ref, "reference_tracker": self.tracker_settings(ref),
               "generated_tracker": self.tracker_settings(self.generated_tracker()),
               "static_px": self.options["static_px"], "points": self.options["points"],
               "static_rule": "static if |d|<static_px; static-static=1, static-moving=0, moving-moving=cos",
               "resample": self.options["resample"]}
        if ref == "gt":
            out["generated_queries"] = "ground-truth points visible at frame 0"
        return out

    def _track(self, tracker: str, frames: torch.Tensor, queries: torch.Tensor | None):
        o = self.options
        if queries is None:
            queries = grid_points(frames.shape[2], frames.shape[3], o["grid_size"])
            if tracker == "cotracker":
                return cotracker_track(self.model, frames, self.device, grid_size=o["grid_size"])
        if tracker == "cotracker":
            return cotracker_track(self.model, frames, self.device, queries=queries)
        return lk_track(frames, queries, o["lk_win"], o["lk_levels"], float(o["lk_fb_px"]))

    def tracks(self, generated: Video, clip: Clip) -> Tracked:
        """Reference and generated tracks after alignment (see ``Tracked``)."""
        self.ensure_prepared()
        tracker = self.resolved_tracker()
        pair = align(self.name, generated, clip, self.options["resample"], with_tracks=tracker == "gt")
        hw = tuple(pair.generated.shape[-2:])
        if tracker == "gt":
            if pair.ref_tracks is None:
                raise ValueError(f"motion_fidelity (tracker gt): clip {clip.id!r} has no ground-truth tracks; "
                                 f"use tracker 'lk', 'cotracker' or 'auto'")
            ref_t, ref_v = pair.ref_tracks.float(), pair.ref_visibility.bool()
            if self.moving_only:
                keep = self._moving(ref_t, ref_v, clip)
                ref_t, ref_v = ref_t[:, keep], ref_v[:, keep]
            start = ref_v[0]
            if not start.any():
                raise ValueError(f"motion_fidelity (tracker gt): clip {clip.id!r} has no track visible at frame 0")
            gen_t, gen_v = self._track(self.generated_tracker(), pair.generated, ref_t[0][start])
            return Tracked(ref_t, ref_v, gen_t, gen_v, start.nonzero()[:, 0], hw)
        settings = {**self.tracker_settings(tracker), **reference_settings(pair)}
        ref = self.cache.get_or_compute(
            clip.content_hash, f"tracks-{tracker}", settings,
            lambda: dict(zip(("tracks", "visibility"), self._track(tracker, pair.reference, None))))
        gen_t, gen_v = self._track(tracker, pair.generated, None)   # the same grid: track k <-> track k
        ref_t, ref_v = ref["tracks"], ref["visibility"].bool()
        partner = torch.arange(ref_t.shape[1])
        if self.moving_only:
            keep_ref = self._moving(ref_t, ref_v, clip)
            keep_gen = moving_tracks(gen_t, gen_v, float(self.options["static_px"]))
            # DMT's sets: moving reference tracks, moving generated tracks; pairs: moving reference
            # tracks with their partners, moving or not (a partner at rest has not followed)
            pairs = Tracked(ref_t[:, keep_ref], ref_v[:, keep_ref], gen_t[:, keep_ref], gen_v[:, keep_ref],
                            torch.arange(int(keep_ref.sum())), hw)
            return Tracked(ref_t[:, keep_ref], ref_v[:, keep_ref], gen_t[:, keep_gen], gen_v[:, keep_gen],
                           None, hw, pairs)
        return Tracked(ref_t, ref_v, gen_t, gen_v, partner, hw)

    @property
    def moving_only(self) -> bool:
        return self.options["points"] == "moving"

    def _moving(self, tracks: torch.Tensor, vis: torch.Tensor, clip: Clip) -> torch.Tensor:
        keep = moving_tracks(tracks, vis, float(self.options["static_px"]))
        if not keep.any():
            raise ValueError(f"motion_fidelity (points=moving): no reference track of clip {clip.id!r} moves "
                             f"by {self.options['static_px']} px per frame or more")
        return keep

    def score(self, generated: Video, clip: Clip) -> dict[str, float]:
        t = self.tracks(generated, clip)
        static, empty = float(self.options["static_px"]), 0.0 if self.moving_only else None
        result = motion_fidelity(t.ref_tracks, t.ref_vis, t.gen_tracks, t.gen_vis, static, empty_score=empty)
        p = t.paired()
        result.update(paired_fidelity(p.ref_tracks[:, p.partner], p.ref_vis[:, p.partner], p.gen_tracks, p.gen_vis,
                                      t.frame_hw, static, empty_score=empty))
        return result


@dataclass
class Tracked:
    """Both sides' tracks (T, N, 2) / (T, M, 2) with visibility, as DMT's score takes them, and
    which reference track each generated track started from (``partner``: (M,) indices), for
    the paired variant. ``pairs``, when set, holds a different selection for the pairs (with
    points="moving" DMT drops generated tracks at rest; the pairs keep them)."""
    ref_tracks: torch.Tensor
    ref_vis: torch.Tensor
    gen_tracks: torch.Tensor
    gen_vis: torch.Tensor
    partner: torch.Tensor | None
    frame_hw: tuple[int, int]
    pairs: Tracked | None = None

    def paired(self) -> Tracked:
        return self.pairs or self
