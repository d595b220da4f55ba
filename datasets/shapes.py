"""``shapes``: procedurally generated clips with exact ground-truth point tracks, rendered by
the toy world (``motiongrid.bench.toyworld``: shapes, trajectories, poses, masks), which the
toy trainers share; this module turns its scenes into clips and editing cases.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict

import numpy as np

from motiongrid.bench.clip import Clip, EditCase
from motiongrid.bench.hashing import sha256_json, sha256_text
from motiongrid.bench.toyworld import (  # noqa: F401  (re-exported: the clip set's options and specs)
    COLOURS,
    EXTRA_MOTIONS,
    FLAT_BACKGROUND,
    KINDS,
    MOTIONS,
    PRESETS,
    ClipSpec,
    Scene,
    ShapesOptions,
    random_spec,
    render_clip,
    target_spec,
)
from motiongrid.bench.video import Video

EDIT_OPTIONS = ("edit", "target_mask_dilate", "min_turn")


def spec_hash(spec: ClipSpec, opts: ShapesOptions) -> str:
    options = asdict(opts)
    if not opts.edit:   # options that only shape editing cases stay out: earlier hashes (and cell keys) hold
        for key in EDIT_OPTIONS:
            options.pop(key)
    payload = json.dumps({"spec": asdict(spec), "opts": options, "v": 1}, sort_keys=True, default=list)
    return sha256_text(payload, 16)


def make_clip(spec: ClipSpec, opts: ShapesOptions, clip_id: str) -> Clip:
    _, tracks, vis = render_clip(spec, opts)   # tracks are cheap; pixels render lazily

    def load() -> Video:
        return Video(Scene(spec, opts).render(), opts.fps)

    return Clip(id=clip_id, prompt=spec.prompt(), loader=load, source_hash=spec_hash(spec, opts),
                tracks=tracks, visibility=vis, flow=lambda: Scene(spec, opts).flow_to_previous(),
                meta={"generator": "shapes", "spec": asdict(spec), "object_points": int((tracks.shape[1]) - opts.track_grid ** 2)})


def make_edit_clip(spec: ClipSpec, target: ClipSpec, opts: ShapesOptions, clip_id: str) -> Clip:
    """An editing case: source = ``spec`` rendered, target motion = ``target``'s trajectory;
    the ground truth is the same object and background rendered along it (exact)."""
    source = make_clip(spec, opts, clip_id)
    gt_scene = Scene(target, opts)
    gt_tracks, gt_vis = gt_scene.tracks()
    digest = sha256_json({"target": asdict(target), "dilate": opts.target_mask_dilate, "v": 1}, 16, default=list)
    source.edit = EditCase(
        source_poses=lambda: Video(Scene(spec, opts).poses(), opts.fps),
        target_poses=lambda: Video(Scene(target, opts).poses(), opts.fps),
        source_masks=lambda: Scene(spec, opts).masks(),
        target_masks=lambda: Scene(target, opts).masks(opts.target_mask_dilate),
        digest=digest,
        ground_truth=lambda: Video(Scene(target, opts).render(), opts.fps),
        ground_truth_tracks=gt_tracks, ground_truth_visibility=gt_vis,
        ground_truth_flow=lambda: Scene(target, opts).flow_to_previous())
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
