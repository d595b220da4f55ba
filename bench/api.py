"""The small abstract APIs every method, metric and clip set implements."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch

from motiongrid.bench.clip import Clip

# typed options live with Params in a torch-free module, so listings and parsers read them cheaply
from motiongrid.bench.params import ClipSetOptions, MetricOptions, NoParams, OptionsError, Params  # noqa: F401
from motiongrid.bench.video import Video


@dataclass(frozen=True)
class ShapeSpec:
    """What ``motiongrid profile`` asks a method to build for: clip size and weight dtype."""
    frames: int
    height: int
    width: int
    dtype: torch.dtype
    dtype_name: str
    device: torch.device
    # Denoising steps to run (None: all). Methods whose per-step memory does not grow with the
    # step count run this many (keeping one step of each kind: guided, unguided) and report
    # the full count; methods whose caches grow with steps ignore it and run all.
    sample_steps: int | None = None


@dataclass
class ShapeOnly:
    """A method's real-size architecture with random weights, installed so that ``generate``
    uses it: the modules (for parameter counts and the weights' bytes), a description, the
    number of denoising steps one cell runs, and optionally the clip to run it on."""
    modules: list[torch.nn.Module]
    description: str
    steps: int | None = None                 # denoising steps a real cell runs
    clip: Clip | None = None
    params: Params | None = None             # what to run instead of the variant's params (sampled steps)
    sampled_steps: int | None = None         # steps the profile runs (None: all of them)


class Method:
    """A method adapter: declares its parameters and task, loads once, generates per cell.

    Subclasses set ``Params`` (a pydantic model with defaults) and ``task``, and implement
    ``generate``. ``prepare`` runs once per run before any cell of this method.

    ``task``: "t2v-motion" methods take a motion reference clip (``clip.video``); "edit"
    methods take an editing case (``clip.edit``: poses, masks; ``clip.video`` is the source);
    "baseline" methods run on either. The runner refuses, as one config error, a grid that
    pairs a method with clips of the other kind.
    """
    name: ClassVar[str]
    task: ClassVar[Literal["t2v-motion", "edit", "baseline"]] = "t2v-motion"
    Params: ClassVar[type[Params]] = NoParams
    description: ClassVar[str] = ""
    # An oracle copies (part of) the reference: its scores are ceilings to read others against,
    # never a method's achievement; reports mark it and never rank it best.
    oracle: ClassVar[bool] = False
    # What one worker running this method needs on a Ray cluster (``--executor ray``; the local
    # executor ignores it): ``gpus`` per worker when the grid runs on CUDA (0: the method runs
    # on the CPU and holds no GPU, so its device must not change its output), ``cpus`` (also the
    # worker's torch threads) and ``memory_gb`` of host memory for Ray to reserve (None: none).
    resources: ClassVar[dict[str, float | None]] = {"gpus": 1, "cpus": 1, "memory_gb": None}

    def __init__(self) -> None:
        self.device = torch.device("cpu")
        # What generate() wants stored with the cell (JSON-able), e.g. guidance calls made;
        # the runner clears it before each cell.
        self.cell_notes: dict = {}

    def prepare(self, device: torch.device, weights: Any = None) -> None:
        self.device = device

    def generate(self, clip: Clip, params: Params, seed: int) -> Video:
        raise NotImplementedError

    # Optional: the things that make this method's output depend on loaded weights, for the
    # cell key and run.json (e.g. {"model": "toy", "sha256": ...}). Called before ``prepare``
    # (``self.device`` is set) and must not load weights: keys of a finished grid need no model.
    def fingerprint(self, params: Params) -> dict:
        return {}

    # Optional: load what generating with ``params`` needs; called after ``prepare``, before the
    # first cell with these params that needs generating, outside cell timings.
    def load(self, params: Params) -> None:
        pass

    # Optional (``motiongrid profile``): build the architecture ``generate`` would use with
    # ``params`` at its REAL size with random weights, for clips of ``spec``'s shape, on the
    # current default device (``meta`` when estimating), and install it in place of ``load``.
    # Shape-only: its outputs are never scored or stored.
    def shape_only(self, params: Params, spec: ShapeSpec) -> ShapeOnly:
        raise NotImplementedError(f"{type(self).__name__} has no real-size architecture to profile")


class MetricUnavailable(RuntimeError):
    """Raised (or returned as reason) when a metric cannot run here; message says how to fix it."""


class AlignmentError(ValueError):
    """Generated and reference videos differ in frame count or size and no resample was set."""


class Metric:
    """A metric: declares what it needs and which way is better; scores one generated video.

    ``needs`` is a subset of {"reference", "prompt", "tracks", "target"}. ``available()``
    returns None when the metric can run, otherwise the reason with the command that fixes it.
    ``score`` returns a float or a dict of named floats (stored as ``<name>`` or
    ``<name>.<key>``).

    A metric defined over a set rather than per video (FID) sets ``set_level`` and implements
    ``score_set``: the runner then also computes it once per label over all that label's
    cells, stored beside the per-cell values.

    ``clip`` is what the cell is compared with: for an editing case, the ground-truth edit
    (``Clip.scoring_reference``), never the source.
    """
    name: ClassVar[str]
    set_level: ClassVar[bool] = False
    higher_is_better: ClassVar[bool] = True
    needs: ClassVar[frozenset[str]] = frozenset({"reference"})
    # What an exact copy of the reference scores (a float, or {result key: value} for a dict
    # result); None for metrics that compare with no reference. The contract test checks it.
    ideal: ClassVar[float | dict[str, float] | None] = None
    description: ClassVar[str] = ""
    Options: ClassVar[type[MetricOptions]] = MetricOptions
    # For a dict result: the key a report leads with (run.json records it), keys whose better
    # direction differs from ``higher_is_better`` ({key: higher_is_better}), and one line per
    # key saying what it measures (reports show it).
    headline: ClassVar[str | None] = None
    directions: ClassVar[dict[str, bool]] = {}
    key_descriptions: ClassVar[dict[str, str]] = {}

    def __init__(self, **options: Any) -> None:
        self.opts = self.Options.parse(f"metric {getattr(self, 'name', type(self).__name__)!r}", options)
        self.options = self.opts.model_dump()   # plain dict, for code that reads options by key
        self.device = torch.device("cpu")

    def available(self) -> str | None:
        return None

    def prepare(self, device: torch.device) -> None:
        self.device = device

    def preprocessing(self) -> dict:
        """Everything about input conversion that changes the number; recorded with results."""
        return {}

    def score(self, generated: Video, clip: Clip) -> float | dict[str, float]:
        raise NotImplementedError

    def score_set(self, pairs: Iterable[tuple[Video, Clip]]) -> float | dict[str, float]:
        """One value over many (generated, reference clip) pairs; only for ``set_level``."""
        raise NotImplementedError


class ClipSet:
    """A named source of clips; ``load`` returns them in a stable order. ``Options`` types the
    options (unknown keys and NaN are errors); ``self.options`` holds only those the user set."""
    name: ClassVar[str]
    description: ClassVar[str] = ""
    Options: ClassVar[type[ClipSetOptions]] = ClipSetOptions

    def __init__(self, **options: Any) -> None:
        self.opts = self.Options.parse(f"clip set {getattr(self, 'name', type(self).__name__)!r}", options)
        self.options = self.opts.model_dump(exclude_unset=True)

    def load(self) -> list[Clip]:
        raise NotImplementedError
