"""``shapes``: procedurally generated clips with exact ground-truth point tracks.

A textured shape moves over a background by translation, rotation and/or scaling; the camera
may pan or zoom; an occluding bar may pass in front. Everything is deterministic from the
clip set's seed and each clip's index, so the same options always give the same pixels.

Geometry: world coordinates are pixels of frame 0. At frame t the camera maps a world point w
to the image as  i = (w - c) * zoom_t + c - pan_t  (c = image centre), and a point q in the
object's own frame sits at  w = p_t + s_t * R(theta_t) q.  Tracks follow those maps exactly.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from scipy.ndimage import binary_dilation, map_coordinates

from motiongrid.bench.clip import Clip, EditCase
from motiongrid.bench.video import Video

COLOURS = {
    "red": (0.90, 0.15, 0.12),
    "green": (0.15, 0.80, 0.20),
    "blue": (0.15, 0.30, 0.95),
    "yellow": (0.95, 0.85, 0.10),
    "magenta": (0.85, 0.20, 0.80),
    "cyan": (0.10, 0.85, 0.85),
}
KINDS = ("circle", "square", "triangle")
MOTIONS = ("translate", "rotate", "scale", "pan", "zoom", "occlusion")
# Motions only asked for by name (kept out of MOTIONS, the default, so default clips keep their
# hashes): "opposing" is a camera following a subject — the object moves one way across the
# frame while the background slides the opposite way, the scene where DMT's best-match score
# cannot tell a video from itself played backwards (docs/metrics.md).
EXTRA_MOTIONS = ("opposing",)
FLAT_BACKGROUND = (0.08, 0.08, 0.10)  # the toy world's background colour

# Named option sets. "toy" is the toy world (methods/toy.py trains on it): one plain circle or
# square, 3-4 px half-size, translating 1-2 px/frame over a flat dark background, 8 frames of
# 24x24, prompts without motion words (motion must come from guidance, not from text).
PRESETS = {
    "toy": {
        "size": 24, "frames": 8, "background": "flat", "kinds": ("circle", "square"),
        "colours": ("red", "green", "blue", "yellow"), "motions": ("translate",),
        "radius": (3 / 24, 4 / 24), "speed": (1 / 24, 2 / 24), "striped": False,
        "describe_motion": False, "fps": 8.0,
    },
}
# Opposing motions with exact tracks: every clip an "opposing" scene on a textured background.
PRESETS["opposing"] = {"size": 48, "frames": 12, "count": 4, "motions": ("opposing",), "speed": (0.025, 0.04)}
# The toy editing world: toy clips as sources, each with a new trajectory from the same start
# as the target motion, and the ground truth rendered along it (datasets/shapes.py "editing").
PRESETS["edit"] = {**PRESETS["toy"], "edit": True}

# Toy "pose" skeleton: a keypoint at the object's centre and one at each end of its two axes,
# joined by thin limbs in colours no toy object uses. It carries position, size and
# orientation but not colour or shape, as a DWPose skeleton carries a body's pose but not its
# clothes. Drawn on black, like the released cases' pose images.
POSE_LIMBS = (((1.0, 0.0), (1.00, 0.55, 0.00)),    # +x axis: orange
              ((-1.0, 0.0), (1.00, 1.00, 1.00)),   # -x axis: white
              ((0.0, 1.0), (1.00, 0.60, 0.75)),    # +y axis: pink
              ((0.0, -1.0), (0.60, 0.35, 1.00)))   # -y axis: violet
POSE_CENTRE = (0.55, 0.55, 0.55)                   # centre keypoint: grey


@dataclass(frozen=True)
class ClipSpec:
    """Everything that determines one clip's pixels and tracks."""
    kind: str
    colour: str
    radius: float            # object half-size in pixels at frame 0
    position: tuple          # (x, y) world position at frame 0
    velocity: tuple          # (vx, vy) pixels per frame
    angle: float             # radians at frame 0
    spin: float              # radians per frame
    growth: float            # scale factor per frame (1 = constant size)
    pan: tuple               # camera (px, py) per frame
    zoom: float              # camera zoom factor per frame
    occluder: bool
    striped: bool
    background: str          # "textured" | "flat"
    texture_seed: int
    motion: str              # the motion label used in the id and prompt
    describe_motion: bool = True  # False: the prompt names only shape, colour, background

    def prompt(self) -> str:
        texture = "striped " if self.striped else ""
        bg = "a textured background" if self.background == "textured" else "a dark background"
        if not self.describe_motion:
            return f"a {self.colour} {texture}{self.kind} on {bg}"
        verb = {
            "translate": "moving " + _direction(self.velocity),
            "rotate": "rotating",
            "scale": "growing" if self.growth >= 1 else "shrinking",
            "pan": "as the camera pans " + _direction(tuple(-v for v in self.pan)),
            "zoom": "as the camera zooms " + ("in" if self.zoom >= 1 else "out"),
            "occlusion": "moving " + _direction(self.velocity) + " behind a bar",
            "opposing": "moving " + _direction(self.pan) + " as the background slides "
                        + _direction(tuple(-v for v in self.pan)),
        }[self.motion]
        return f"a {self.colour} {texture}{self.kind} {verb} on {bg}"


def _direction(v) -> str:
    vx, vy = v
    if abs(vx) < 1e-6 and abs(vy) < 1e-6:
        return "nowhere"
    horiz = "right" if vx > 0 else "left"
    vert = "down" if vy > 0 else "up"
    if abs(vx) > 2 * abs(vy):
        return horiz
    if abs(vy) > 2 * abs(vx):
        return vert
    return f"{vert} and {horiz}"


@dataclass(frozen=True)
class ShapesOptions:
    count: int = 8
    size: int = 64
    frames: int = 16
    seed: int = 0
    background: str = "textured"         # "textured" | "flat" (the toy world)
    kinds: tuple = KINDS
    colours: tuple = tuple(COLOURS)
    motions: tuple = MOTIONS
    radius: tuple = (0.12, 0.2)          # object half-size as a fraction of the frame
    speed: tuple = (0.02, 0.04)          # pixels per frame as a fraction of the frame
    striped: bool = True
    fps: float = 8.0
    track_grid: int = 6                  # object points per side; background gets the same
    describe_motion: bool = True         # False for the toy world: motion must come from guidance
    edit: bool = False                   # editing cases: source + target motion + exact ground truth
    target_mask_dilate: int = 0          # px: grow T to imitate a mask predictor's error
    min_turn: float = 60.0               # degrees between the source and target headings (at least)

    def __post_init__(self):
        for name, allowed, values in (("kinds", KINDS, self.kinds), ("colours", tuple(COLOURS), self.colours),
                                      ("motions", MOTIONS + EXTRA_MOTIONS, self.motions)):
            bad = [v for v in values if v not in allowed]
            if bad or not values:
                raise ValueError(f"shapes option {name}={list(values)!r}: allowed values are {list(allowed)}")
        if self.background not in ("textured", "flat"):
            raise ValueError(f"shapes option background={self.background!r}: expected 'textured' or 'flat'")
        if self.size < 8 or self.frames < 2 or self.count < 1:
            raise ValueError(f"shapes options need size>=8, frames>=2, count>=1 (got {self.size}, {self.frames}, {self.count})")
        if self.edit and set(self.motions) - {"translate"}:
            raise ValueError(f"shapes option edit=true needs motions=['translate'] (got {list(self.motions)}): "
                             "an editing case moves the object along a new trajectory")
        if not 0 <= self.min_turn <= 180 or self.target_mask_dilate < 0:
            raise ValueError(f"shapes options need 0 <= min_turn <= 180 and target_mask_dilate >= 0 "
                             f"(got {self.min_turn}, {self.target_mask_dilate})")


def random_spec(rng: np.random.Generator, opts: ShapesOptions, motion: str | None = None) -> ClipSpec:
    """Draw one clip's spec; motion is cycled by the caller or drawn here."""
    s = opts.size
    motion = motion or str(rng.choice(opts.motions))
    radius = float(rng.uniform(*opts.radius) * s)
    speed = float(rng.uniform(*opts.speed) * s)
    heading = float(rng.uniform(0, 2 * np.pi))
    velocity = (speed * np.cos(heading), speed * np.sin(heading))
    if motion in ("translate", "occlusion"):
        # start so the whole path stays inside the frame
        lo, hi = _start_box(velocity, radius, opts)
        position = tuple(float(rng.uniform(low, max(low, high))) for low, high in zip(lo, hi))
    elif motion == "opposing":
        # the camera pans at the object's speed, the object moves at twice that in the world:
        # on screen the object moves by +velocity per frame, the background by -velocity
        lo, hi = _start_box(velocity, radius, opts)
        position = tuple(float(rng.uniform(low, max(low, high))) for low, high in zip(lo, hi))
        opposing_pan, velocity = velocity, (2 * velocity[0], 2 * velocity[1])
    else:
        velocity = (0.0, 0.0)
        position = tuple(float(v) for v in rng.uniform(s * 0.4, s * 0.6, size=2))
    spin = float(rng.choice([-1, 1]) * rng.uniform(0.15, 0.3)) if motion == "rotate" else 0.0
    growth = float(rng.choice([0.96, 1.04])) if motion == "scale" else 1.0
    pan = opposing_pan if motion == "opposing" else (0.0, 0.0)
    if motion == "pan":
        h = float(rng.uniform(0, 2 * np.pi))
        pan = (speed * np.cos(h), speed * np.sin(h))
    zoom = float(rng.choice([0.97, 1.03])) if motion == "zoom" else 1.0
    return ClipSpec(
        kind=str(rng.choice(opts.kinds)), colour=str(rng.choice(opts.colours)), radius=radius,
        position=position, velocity=velocity, angle=float(rng.uniform(0, np.pi)), spin=spin,
        growth=growth, pan=pan, zoom=zoom, occluder=motion == "occlusion", striped=opts.striped,
        background=opts.background, texture_seed=int(rng.integers(0, 2**31 - 1)), motion=motion,
        describe_motion=opts.describe_motion,
    )


def _start_box(velocity, radius: float, opts: ShapesOptions) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest start (x, y) from which the object's whole path stays in frame."""
    travel = np.array(velocity) * (opts.frames - 1)
    return radius + 1 - np.minimum(travel, 0), opts.size - radius - 2 - np.maximum(travel, 0)


def target_spec(rng: np.random.Generator, spec: ClipSpec, opts: ShapesOptions) -> ClipSpec:
    """The editing target: the same object from the same start along a new heading (turned by
    at least ``min_turn`` degrees), with a speed from the same range, and staying in frame.
    Falls back to heading for the frame centre when no drawn heading keeps the path inside."""
    old = np.arctan2(spec.velocity[1], spec.velocity[0])
    start = np.array(spec.position)
    for _ in range(200):
        heading = float(rng.uniform(0, 2 * np.pi))
        turn = abs((heading - old + np.pi) % (2 * np.pi) - np.pi)
        speed = float(rng.uniform(*opts.speed) * opts.size)
        velocity = (speed * np.cos(heading), speed * np.sin(heading))
        lo, hi = _start_box(velocity, spec.radius, opts)
        if np.degrees(turn) >= opts.min_turn and np.all(start >= lo) and np.all(start <= hi):
            break
    else:
        to_centre = (opts.size - 1) / 2 - start
        speed = min(opts.speed[0] * opts.size, float(np.linalg.norm(to_centre)) / max(1, opts.frames - 1))
        velocity = tuple(float(v) for v in to_centre / max(1e-9, float(np.linalg.norm(to_centre))) * speed)
    return replace(spec, velocity=tuple(float(v) for v in velocity))


# ---- rendering ------------------------------------------------------------------------

def _object_sdf(kind: str, q: np.ndarray) -> np.ndarray:
    """Signed distance (positive inside) in object units for unit-size shapes; q (..., 2)."""
    x, y = q[..., 0], q[..., 1]
    if kind == "circle":
        return 1.0 - np.hypot(x, y)
    if kind == "square":
        return 0.85 - np.maximum(np.abs(x), np.abs(y))
    # equilateral triangle, centroid at origin, circumradius 1.1
    r = 1.1
    d = np.full(x.shape, np.inf)
    for k in range(3):
        a = np.pi / 2 + k * 2 * np.pi / 3 + np.pi  # outward normals point away from vertices
        n = np.array([np.cos(a), np.sin(a)])
        d = np.minimum(d, r / 2 - (x * n[0] + y * n[1]))
    return d


def _rotation(theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s], [s, c]])


class _Scene:
    def __init__(self, spec: ClipSpec, opts: ShapesOptions):
        self.spec, self.opts = spec, opts
        self.centre = np.array([(opts.size - 1) / 2.0] * 2)
        rng = np.random.default_rng(spec.texture_seed)
        s = opts.size
        # Background texture over world [-s, 2s): smooth random colour field, so pan/zoom show.
        coarse = rng.uniform(0.15, 0.65, size=(3, 12, 12))
        grid = np.linspace(0, 11, 3 * s)
        yy, xx = np.meshgrid(grid, grid, indexing="ij")
        self.bg_texture = np.stack([map_coordinates(c, [yy, xx], order=3, mode="reflect") for c in coarse])
        self.occluder_x0 = float(rng.uniform(-0.2, 0.1) * s)
        self.occluder_speed = 1.2 * s / max(1, opts.frames - 1)

    # camera ------------------------------------------------------------
    def zoom_at(self, t): return self.spec.zoom ** t
    def pan_at(self, t): return np.array(self.spec.pan) * t

    def world_to_image(self, w, t):
        return (w - self.centre) * self.zoom_at(t) + self.centre - self.pan_at(t)

    def image_to_world(self, i, t):
        return (i + self.pan_at(t) - self.centre) / self.zoom_at(t) + self.centre

    # object ------------------------------------------------------------
    def object_pose(self, t):
        sp = self.spec
        pos = np.array(sp.position) + np.array(sp.velocity) * t
        return pos, sp.angle + sp.spin * t, sp.radius * sp.growth ** t

    def object_to_image(self, q, t):
        pos, theta, scale = self.object_pose(t)
        w = pos + scale * q @ _rotation(theta).T
        return self.world_to_image(w, t)

    def occluder_coverage(self, pixels: np.ndarray, t) -> np.ndarray:
        """Occluder: a vertical bar sweeping across the frame, in image space."""
        if not self.spec.occluder:
            return np.zeros(pixels.shape[:-1])
        x0 = self.occluder_x0 + self.occluder_speed * t
        half = 0.12 * self.opts.size
        return np.clip(half - np.abs(pixels[..., 0] - x0) + 0.5, 0, 1)

    def pixels(self) -> np.ndarray:
        s = self.opts.size
        ys, xs = np.meshgrid(np.arange(s, dtype=np.float64), np.arange(s, dtype=np.float64), indexing="ij")
        return np.stack([xs, ys], axis=-1)

    def object_cover(self, world: np.ndarray, t) -> tuple[np.ndarray, np.ndarray]:
        """Object coordinates of each pixel and the object's antialiased coverage (0..1)."""
        pos, theta, scale = self.object_pose(t)
        q = (world - pos) @ _rotation(theta) / scale            # inverse of the object map
        return q, np.clip(_object_sdf(self.spec.kind, q) * scale * self.zoom_at(t) + 0.5, 0, 1)

    def masks(self, dilate: int = 0) -> torch.Tensor:
        """(T, H, W) bool: the object's silhouette (coverage >= 0.5), optionally dilated by
        ``dilate`` px (a 3x3 structuring element per step)."""
        pixels = self.pixels()
        out = np.stack([self.object_cover(self.image_to_world(pixels, t), t)[1] >= 0.5
                        for t in range(self.opts.frames)])
        if dilate:
            out = np.stack([binary_dilation(m, np.ones((3, 3), bool), iterations=dilate) for m in out])
        return torch.from_numpy(out)

    def poses(self) -> torch.Tensor:
        """(T, 3, H, W) toy pose skeletons on black (see POSE_LIMBS)."""
        pixels = self.pixels()
        out = np.zeros((self.opts.frames, 3, self.opts.size, self.opts.size), dtype=np.float32)
        for t in range(self.opts.frames):
            centre = self.object_to_image(np.zeros((1, 2)), t)[0]
            frame = out[t]
            for end, colour in POSE_LIMBS:
                tip = self.object_to_image(np.array([end]), t)[0]
                _paint(frame, _segment_cover(pixels, centre, tip, 0.5), colour)
                _paint(frame, _segment_cover(pixels, tip, tip, 0.9), colour)
            _paint(frame, _segment_cover(pixels, centre, centre, 0.9), POSE_CENTRE)
        return torch.from_numpy(out)

    def render(self) -> torch.Tensor:
        opts, sp = self.opts, self.spec
        s = opts.size
        pixels = self.pixels()
        colour = np.array(COLOURS[sp.colour])[:, None, None]
        out = np.empty((opts.frames, 3, s, s), dtype=np.float32)
        for t in range(opts.frames):
            world = self.image_to_world(pixels, t)
            if sp.background == "flat":
                frame = np.broadcast_to(np.array(FLAT_BACKGROUND)[:, None, None], (3, s, s)).copy()
            else:
                # texture index: world [-s, 2s) -> [0, 3s)
                coords = [world[..., 1] + s, world[..., 0] + s]
                frame = np.stack([map_coordinates(c, coords, order=1, mode="reflect") for c in self.bg_texture])
            q, cover = self.object_cover(world, t)
            shade = np.ones_like(cover)
            if sp.striped:
                shade = 0.72 + 0.28 * (np.sin(q[..., 0] * 2.5 * np.pi) > 0)
            obj = colour * shade[None]
            frame = frame * (1 - cover[None]) + obj * cover[None]
            occ = self.occluder_coverage(pixels, t)
            frame = frame * (1 - occ[None]) + 0.85 * occ[None]
            out[t] = frame
        return torch.from_numpy(out).clamp_(0, 1)

    def flow_to_previous(self, edge: float = 0.02) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact backward flow: (T-1, 2, H, W) (dx, dy) from each pixel of frame t+1 to where
        the surface it shows sat in frame t, and (T-1, H, W) bool: True where that surface
        point is visible in frame t and the pixel is not mixed. Left out: pixels on the
        occluder, points off frame t, background hidden by the object at frame t, and pixels
        on the object's antialiased edge at either frame (coverage in (edge, 1-edge)), whose
        colour is a blend that no flow moves exactly."""
        pixels = self.pixels()
        flows, valid = [], []
        for t in range(1, self.opts.frames):
            world = self.image_to_world(pixels, t)
            q, cover = self.object_cover(world, t)
            on_object = cover >= 0.5
            prev = np.where(on_object[..., None], self.object_to_image(q, t - 1), self.world_to_image(world, t - 1))
            prev_cover = self.object_cover(self.image_to_world(prev, t - 1), t - 1)[1]
            s = self.opts.size
            ok = np.all((prev >= 0) & (prev <= s - 1), axis=-1)
            ok &= (self.occluder_coverage(pixels, t) <= 0) & (self.occluder_coverage(prev, t - 1) <= 0)
            ok &= np.where(on_object, prev_cover >= 0.5, prev_cover < 0.5)        # same surface seen at t
            ok &= ((cover <= edge) | (cover >= 1 - edge)) & ((prev_cover <= edge) | (prev_cover >= 1 - edge))
            flows.append(np.moveaxis(prev - pixels, -1, 0))
            valid.append(ok)
        return (torch.tensor(np.stack(flows), dtype=torch.float32), torch.from_numpy(np.stack(valid)))

    def tracks(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(T, N, 2) image-space (x, y) and (T, N) visibility for object then background points."""
        opts, sp = self.opts, self.spec
        g = np.linspace(-0.6, 0.6, opts.track_grid)
        q = np.stack(np.meshgrid(g, g, indexing="xy"), -1).reshape(-1, 2)
        q = q[_object_sdf(sp.kind, q) > 0.15]                      # well inside the shape
        bg = np.linspace(0.08, 0.92, opts.track_grid) * (opts.size - 1)
        bg_img0 = np.stack(np.meshgrid(bg, bg, indexing="xy"), -1).reshape(-1, 2)
        bg_world = self.image_to_world(bg_img0, 0)
        pos_t, vis_t = [], []
        for t in range(opts.frames):
            obj = self.object_to_image(q, t)
            back = self.world_to_image(bg_world, t)
            pts = np.concatenate([obj, back])
            inside = np.all((pts >= 0) & (pts <= opts.size - 1), axis=-1)
            occluded = self.occluder_coverage(pts, t) > 0.5
            # background points hidden by the object
            pos, theta, scale = self.object_pose(t)
            qb = (self.image_to_world(back, t) - pos) @ _rotation(theta) / scale
            hidden = np.concatenate([np.zeros(len(obj), bool), _object_sdf(sp.kind, qb) > 0])
            pos_t.append(pts)
            vis_t.append(inside & ~occluded & ~hidden)
        return (torch.tensor(np.stack(pos_t), dtype=torch.float32),
                torch.tensor(np.stack(vis_t), dtype=torch.bool))


def _segment_cover(pixels: np.ndarray, a: np.ndarray, b: np.ndarray, half_width: float) -> np.ndarray:
    """Antialiased coverage of a segment a-b of the given half-width (a point when a == b)."""
    ab = b - a
    t = np.clip(((pixels - a) @ ab) / max(float(ab @ ab), 1e-12), 0, 1)
    dist = np.linalg.norm(pixels - (a + t[..., None] * ab), axis=-1)
    return np.clip(half_width + 0.5 - dist, 0, 1)


def _paint(frame: np.ndarray, cover: np.ndarray, colour) -> None:
    frame *= 1 - cover[None]
    frame += np.array(colour, dtype=np.float32)[:, None, None] * cover[None]


def render_clip(spec: ClipSpec, opts: ShapesOptions) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    scene = _Scene(spec, opts)
    tracks, vis = scene.tracks()
    return scene.render(), tracks, vis


EDIT_OPTIONS = ("edit", "target_mask_dilate", "min_turn")


def spec_hash(spec: ClipSpec, opts: ShapesOptions) -> str:
    options = asdict(opts)
    if not opts.edit:   # options that only shape editing cases stay out: earlier hashes (and cell keys) hold
        for key in EDIT_OPTIONS:
            options.pop(key)
    payload = json.dumps({"spec": asdict(spec), "opts": options, "v": 1}, sort_keys=True, default=list)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def make_clip(spec: ClipSpec, opts: ShapesOptions, clip_id: str) -> Clip:
    _, tracks, vis = render_clip(spec, opts)   # tracks are cheap; pixels render lazily

    def load() -> Video:
        return Video(_Scene(spec, opts).render(), opts.fps)

    return Clip(id=clip_id, prompt=spec.prompt(), loader=load, source_hash=spec_hash(spec, opts),
                tracks=tracks, visibility=vis, flow=lambda: _Scene(spec, opts).flow_to_previous(),
                meta={"generator": "shapes", "spec": asdict(spec), "object_points": int((tracks.shape[1]) - opts.track_grid ** 2)})


def make_edit_clip(spec: ClipSpec, target: ClipSpec, opts: ShapesOptions, clip_id: str) -> Clip:
    """An editing case: source = ``spec`` rendered, target motion = ``target``'s trajectory;
    the ground truth is the same object and background rendered along it (exact)."""
    source = make_clip(spec, opts, clip_id)
    gt_scene = _Scene(target, opts)
    gt_tracks, gt_vis = gt_scene.tracks()
    digest = hashlib.sha256(json.dumps({"target": asdict(target), "dilate": opts.target_mask_dilate, "v": 1},
                                       sort_keys=True, default=list).encode()).hexdigest()[:16]
    source.edit = EditCase(
        source_poses=lambda: Video(_Scene(spec, opts).poses(), opts.fps),
        target_poses=lambda: Video(_Scene(target, opts).poses(), opts.fps),
        source_masks=lambda: _Scene(spec, opts).masks(),
        target_masks=lambda: _Scene(target, opts).masks(opts.target_mask_dilate),
        digest=digest,
        ground_truth=lambda: Video(_Scene(target, opts).render(), opts.fps),
        ground_truth_tracks=gt_tracks, ground_truth_visibility=gt_vis,
        ground_truth_flow=lambda: _Scene(target, opts).flow_to_previous())
    source.target_prompt = spec.prompt()   # same object: the edit changes motion, not appearance
    source.meta["target_spec"] = asdict(target)
    return source


def generate_clips(opts: ShapesOptions) -> list[Clip]:
    """The clip set: motions cycle in order so every motion type is covered evenly. With
    ``edit``, each clip is an editing case whose target heading comes from its own stream."""
    clips = []
    for i in range(opts.count):
        rng = np.random.default_rng([opts.seed, i])
        motion = opts.motions[i % len(opts.motions)]
        spec = random_spec(rng, opts, motion)
        if opts.edit:
            target = target_spec(np.random.default_rng([opts.seed, i, 1]), spec, opts)
            clips.append(make_edit_clip(spec, target, opts, f"shapes-edit-{i:03d}"))
        else:
            clips.append(make_clip(spec, opts, f"shapes-{i:03d}-{motion}"))
    return clips


# ---- registration -------------------------------------------------------------------

from motiongrid.bench.api import ClipSet, ClipSetOptions  # noqa: E402  (api imports datasets.clip; keep it below)
from motiongrid.bench.registry import datasets  # noqa: E402


def _options_model() -> type[ClipSetOptions]:
    """The clip set's typed options: ``preset`` plus every ``ShapesOptions`` field (typed from
    the dataclass, so the two cannot drift); value rules stay in ``ShapesOptions``."""
    from typing import Literal, get_type_hints

    from pydantic import Field, create_model

    # a float option given as an int stays an int: clip hashes serialise options as given
    hints = {k: int | float if v is float else v for k, v in get_type_hints(ShapesOptions).items()}
    fields = {f.name: (hints[f.name], Field(f.default)) for f in dataclasses.fields(ShapesOptions)}
    return create_model("ShapesClipSetOptions", __base__=ClipSetOptions,
                        preset=(Literal[tuple(PRESETS)] | None, Field(None, description="a named option set")),
                        **fields)


@datasets.register("shapes")
class ShapesClipSet(ClipSet):
    description = "procedural textured shapes with ground-truth tracks (no files needed)"
    Options = _options_model()

    def load(self) -> list[Clip]:
        opts = dict(self.options)          # only the options the user set
        preset = opts.pop("preset", None)
        if preset is not None:
            opts = {**PRESETS[preset], **opts}   # explicit options override the preset
        try:
            options = ShapesOptions(**opts)
        except TypeError as exc:
            allowed = ", ".join(ShapesOptions.__dataclass_fields__)
            raise ValueError(f"shapes clip set: {exc}; allowed options: {allowed}") from None
        return generate_clips(options)
