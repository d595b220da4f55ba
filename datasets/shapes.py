"""``shapes``: procedurally generated clips with exact ground-truth point tracks.

A textured shape moves over a background by translation, rotation and/or scaling; the camera
may pan or zoom; an occluding bar may pass in front. Everything is deterministic from the
clip set's seed and each clip's index, so the same options always give the same pixels.

Geometry: world coordinates are pixels of frame 0. At frame t the camera maps a world point w
to the image as  i = (w - c) * zoom_t + c - pan_t  (c = image centre), and a point q in the
object's own frame sits at  w = p_t + s_t * R(theta_t) q.  Tracks follow those maps exactly.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.ndimage import map_coordinates

from motiongrid.bench.clip import Clip
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

    def __post_init__(self):
        for name, allowed, values in (("kinds", KINDS, self.kinds), ("colours", tuple(COLOURS), self.colours),
                                      ("motions", MOTIONS, self.motions)):
            bad = [v for v in values if v not in allowed]
            if bad or not values:
                raise ValueError(f"shapes option {name}={list(values)!r}: allowed values are {list(allowed)}")
        if self.background not in ("textured", "flat"):
            raise ValueError(f"shapes option background={self.background!r}: expected 'textured' or 'flat'")
        if self.size < 8 or self.frames < 2 or self.count < 1:
            raise ValueError(f"shapes options need size>=8, frames>=2, count>=1 (got {self.size}, {self.frames}, {self.count})")


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
        travel = np.array(velocity) * (opts.frames - 1)
        lo = radius + 1 - np.minimum(travel, 0)
        hi = s - radius - 2 - np.maximum(travel, 0)
        position = tuple(float(rng.uniform(low, max(low, high))) for low, high in zip(lo, hi))
    else:
        velocity = (0.0, 0.0)
        position = tuple(float(v) for v in rng.uniform(s * 0.4, s * 0.6, size=2))
    spin = float(rng.choice([-1, 1]) * rng.uniform(0.15, 0.3)) if motion == "rotate" else 0.0
    growth = float(rng.choice([0.96, 1.04])) if motion == "scale" else 1.0
    pan = (0.0, 0.0)
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

    def render(self) -> torch.Tensor:
        opts, sp = self.opts, self.spec
        s = opts.size
        ys, xs = np.meshgrid(np.arange(s, dtype=np.float64), np.arange(s, dtype=np.float64), indexing="ij")
        pixels = np.stack([xs, ys], axis=-1)
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
            pos, theta, scale = self.object_pose(t)
            q = (world - pos) @ _rotation(theta) / scale            # inverse of the object map
            px_per_unit = scale * self.zoom_at(t)
            cover = np.clip(_object_sdf(sp.kind, q) * px_per_unit + 0.5, 0, 1)
            shade = np.ones_like(cover)
            if sp.striped:
                shade = 0.72 + 0.28 * (np.sin(q[..., 0] * 2.5 * np.pi) > 0)
            obj = colour * shade[None]
            frame = frame * (1 - cover[None]) + obj * cover[None]
            occ = self.occluder_coverage(pixels, t)
            frame = frame * (1 - occ[None]) + 0.85 * occ[None]
            out[t] = frame
        return torch.from_numpy(out).clamp_(0, 1)

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


def render_clip(spec: ClipSpec, opts: ShapesOptions) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    scene = _Scene(spec, opts)
    tracks, vis = scene.tracks()
    return scene.render(), tracks, vis


def spec_hash(spec: ClipSpec, opts: ShapesOptions) -> str:
    payload = json.dumps({"spec": asdict(spec), "opts": asdict(opts), "v": 1}, sort_keys=True, default=list)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def make_clip(spec: ClipSpec, opts: ShapesOptions, clip_id: str) -> Clip:
    _, tracks, vis = render_clip(spec, opts)   # tracks are cheap; pixels render lazily

    def load() -> Video:
        return Video(_Scene(spec, opts).render(), opts.fps)

    return Clip(id=clip_id, prompt=spec.prompt(), loader=load, source_hash=spec_hash(spec, opts),
                tracks=tracks, visibility=vis,
                meta={"generator": "shapes", "spec": asdict(spec), "object_points": int((tracks.shape[1]) - opts.track_grid ** 2)})


def generate_clips(opts: ShapesOptions) -> list[Clip]:
    """The clip set: motions cycle in order so every motion type is covered evenly."""
    clips = []
    for i in range(opts.count):
        rng = np.random.default_rng([opts.seed, i])
        motion = opts.motions[i % len(opts.motions)]
        spec = random_spec(rng, opts, motion)
        clips.append(make_clip(spec, opts, f"shapes-{i:03d}-{motion}"))
    return clips


# ---- registration -------------------------------------------------------------------

from motiongrid.bench.api import ClipSet  # noqa: E402  (api imports datasets.clip; keep it below)
from motiongrid.bench.registry import datasets  # noqa: E402


@datasets.register("shapes")
class ShapesClipSet(ClipSet):
    description = "procedural textured shapes with ground-truth tracks (no files needed)"

    def load(self) -> list[Clip]:
        opts = dict(self.options)
        preset = opts.pop("preset", None)
        if preset is not None:
            if preset not in PRESETS:
                raise ValueError(f"shapes option preset={preset!r}: known presets are {sorted(PRESETS)}")
            opts = {**PRESETS[preset], **opts}   # explicit options override the preset
        for key in ("kinds", "colours", "motions", "radius", "speed"):
            if key in opts:
                opts[key] = tuple(opts[key])
        try:
            options = ShapesOptions(**opts)
        except TypeError as exc:
            allowed = ", ".join(ShapesOptions.__dataclass_fields__)
            raise ValueError(f"shapes clip set: {exc}; allowed options: {allowed}") from None
        return generate_clips(options)
