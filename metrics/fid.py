"""``fid``: Fréchet Inception distance between generated and reference FRAMES (clean-fid).

Features: clean-fid's "clean" mode — each frame quantised to uint8 (``to_uint8_hwc``, as a saved
PNG would be), resized to 299x299 by clean-fid's own resizer (PIL bicubic on float channels,
``cleanfid.resize.build_resizer("clean")``), fed in 0..255 to clean-fid's TorchScript
Inception (``InceptionV3W``, 2048-d pool features). Reference features are cached per clip.

Per cell vs per set (a frame is one sample):
- ``score(generated, clip)`` returns ``{"value", "unstable", "n_generated", "n_reference"}`` for
  the cell's own frames. With 16 frames the 2048x2048 covariances have rank <= 15, so the
  value is dominated by estimation noise: ``unstable`` is 1.0 whenever either side has fewer
  than ``min_samples`` frames (default 2048, the feature dimension; below it the covariance
  is singular), and a warning says so. Per-cell values are for spotting outliers, not for
  ranking methods.
- ``score_set(pairs)`` (and ``fid_from_feature_sets``) pools the frames of many cells into one
  set-level FID — the number to compare methods with. ``motiongrid score`` reports it under
  ``set``.

Fréchet distance: with n > d samples on both sides, clean-fid's ``frechet_distance`` (scipy
sqrtm). With n <= d the product of covariances is singular and sqrtm is unreliable (and takes
~10 s at d=2048), so the trace term is computed exactly from the centred feature matrices:
Tr sqrt(S1 S2) = nuclear norm of A1^T A2 with S_i = A_i A_i^T (A_i = centred features /
sqrt(n_i - 1)). Both agree with a scipy sqrtm reference (tests).

Weights: ``inception-2015-12-05.pt`` in clean-fid's folder (``/tmp`` on Linux, weights entry
``cleanfid-inception``); checked before anything is built, since clean-fid would download it.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np
import torch

from motiongrid.bench import weights
from motiongrid.bench.clip import Clip
from motiongrid.bench.registry import metrics
from motiongrid.bench.video import Video, hash_frames, to_uint8_hwc
from motiongrid.metrics._common import BaseMetric, align, reference_settings
from motiongrid.metrics.options import FEATURE_DIM, FIDOptions

WEIGHT = "cleanfid-inception"


class FewSamplesWarning(UserWarning):
    pass


def frechet_distance_from_feats(feats1: np.ndarray, feats2: np.ndarray) -> float:
    """FID between two feature sets (rows = samples); see module doc for the two paths."""
    feats1 = np.asarray(feats1, dtype=np.float64)
    feats2 = np.asarray(feats2, dtype=np.float64)
    if feats1.ndim != 2 or feats2.ndim != 2 or feats1.shape[1] != feats2.shape[1]:
        raise ValueError(f"fid: feature sets must be (n, d) with equal d, got {feats1.shape} and {feats2.shape}")
    n1, n2 = feats1.shape[0], feats2.shape[0]
    if n1 < 2 or n2 < 2:
        raise ValueError(f"fid: needs at least 2 samples per side for a covariance, got {n1} and {n2}")
    d = feats1.shape[1]
    if n1 > d and n2 > d:
        from cleanfid.fid import fid_from_feats

        try:
            return float(fid_from_feats(feats1, feats2))
        except TypeError:  # clean-fid 0.1.35 passes sqrtm(disp=...), which SciPy 1.18 removes
            from scipy import linalg

            mu1, mu2 = feats1.mean(0), feats2.mean(0)
            s1, s2 = np.cov(feats1, rowvar=False), np.cov(feats2, rowvar=False)
            covmean = linalg.sqrtm(s1 @ s2)
            return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)
    mu1, mu2 = feats1.mean(0), feats2.mean(0)
    a1 = (feats1 - mu1) / np.sqrt(n1 - 1)   # S1 = a1^T a1 (rows are samples here)
    a2 = (feats2 - mu2) / np.sqrt(n2 - 1)
    tr1 = float((a1 * a1).sum())
    tr2 = float((a2 * a2).sum())
    # eigenvalues of S1 S2 = squared singular values of a1 a2^T, so Tr sqrt(S1 S2) = their sum
    tr_covmean = float(np.linalg.svd(a1 @ a2.T, compute_uv=False).sum())
    diff = mu1 - mu2
    return float(diff @ diff + tr1 + tr2 - 2.0 * tr_covmean)


def fid_from_feature_sets(generated: np.ndarray, reference: np.ndarray, min_samples: int = FEATURE_DIM,
                          warn: bool = True, metric: str = "fid", unit: str = "frames") -> dict[str, float]:
    """The Fréchet distance with the sample counts and the few-samples flag (also fvd, fid_vid)."""
    n_gen, n_ref = int(generated.shape[0]), int(reference.shape[0])
    unstable = min(n_gen, n_ref) < min_samples
    if unstable and warn:
        warnings.warn(f"{metric}: {n_gen} generated and {n_ref} reference {unit}; a stable {metric.upper()} needs "
                      f"at least {min_samples} per side (feature dim {generated.shape[1]}); value flagged unstable",
                      FewSamplesWarning, stacklevel=2)
    return {"value": frechet_distance_from_feats(generated, reference), "unstable": float(unstable),
            "n_generated": float(n_gen), "n_reference": float(n_ref)}


@metrics.register("fid")
class FID(BaseMetric):
    description = ("Fréchet Inception distance over frames (clean-fid, clean mode); per cell flagged "
                   "unstable, set-level over all cells")
    higher_is_better = False
    ideal = {"value": 0.0}
    needs = frozenset({"reference"})
    set_level = True   # the runner stores one FID per label over all its cells
    Options = FIDOptions


    def available(self) -> str | None:
        try:
            import cleanfid  # noqa: F401
        except ImportError:
            return "fid: clean-fid is not installed. Fix: `pip install clean-fid`"
        reason = weights.available(WEIGHT)
        return f"fid: {reason}" if reason else None

    def load(self) -> None:
        from cleanfid.inception_torchscript import InceptionV3W
        from cleanfid.resize import build_resizer

        path = weights.require(WEIGHT)
        # download=False: clean-fid must never fetch; the folder is handed over explicitly.
        self.model = InceptionV3W(str(path.parent), download=False, resize_inside=False).eval().to(self.device)
        self.resize = build_resizer("clean")

    def preprocessing(self) -> dict:
        import cleanfid

        return {"library": f"clean-fid {getattr(cleanfid, '__version__', '?')}", "mode": "clean",
                "quantise": "uint8 via to_uint8_hwc", "resize": "clean-fid PIL bicubic 299x299 (float)",
                "input": "0..255", "features": "InceptionV3W pool3 2048-d", "sample": "frame",
                "min_samples": self.options["min_samples"], "resample": self.options["resample"]}

    @torch.no_grad()
    def features(self, frames: torch.Tensor) -> np.ndarray:
        """(T, 3, H, W) [0,1] -> (T, 2048) float64, clean-fid's clean-mode pipeline."""
        from cleanfid.fid import get_batch_features

        self.ensure_prepared()
        images = to_uint8_hwc(frames)
        out = []
        for sl in self.batches(len(images)):
            # clean-fid's dataset step: fn_resize on an HWC uint8 array -> float32 HWC 0..255
            batch = torch.stack([torch.from_numpy(np.ascontiguousarray(self.resize(img))).permute(2, 0, 1)
                                 for img in images[sl]])
            out.append(get_batch_features(batch, self.model, self.device))
        return np.concatenate(out).astype(np.float64)

    def generated_features(self, frames: torch.Tensor) -> np.ndarray:
        """Features of generated frames, remembered in memory by their uint8 content hash (the
        features depend on nothing else) so ``score_set`` after ``score`` does not redo them."""
        memo = self.__dict__.setdefault("_memo", {})
        key = hash_frames(frames)
        if key not in memo:
            if len(memo) >= 512:  # ~128 MB of 16-frame feature sets
                memo.pop(next(iter(memo)))
            memo[key] = self.features(frames)
        return memo[key]

    def reference_features(self, frames: torch.Tensor, clip: Clip, settings: dict) -> np.ndarray:
        key = {**self.preprocessing(), **settings, "weights": str(weights.locate(WEIGHT))}
        for k in ("resample", "min_samples"):  # do not change the features
            key.pop(k, None)
        got = self.cache.get_or_compute(clip.content_hash, "cleanfid-inception-clean", key,
                                        lambda: {"feats": torch.from_numpy(self.features(frames))})
        return got["feats"].numpy()

    def pair_features(self, generated: Video, clip: Clip) -> tuple[np.ndarray, np.ndarray]:
        pair = align(self.name, generated, clip, self.options["resample"])
        ref = self.reference_features(pair.reference, clip, reference_settings(pair))
        return self.generated_features(pair.generated), ref

    def score(self, generated: Video, clip: Clip) -> dict[str, float]:
        gen, ref = self.pair_features(generated, clip)
        return fid_from_feature_sets(gen, ref, self.options["min_samples"])

    def score_set(self, pairs: Iterable[tuple[Video, Clip]]) -> dict[str, float]:
        """Set-level FID: frames of all generated videos vs frames of all their references."""
        gens, refs = [], {}
        for video, clip in pairs:
            pair = align(self.name, video, clip, self.options["resample"])
            settings = reference_settings(pair)
            # a clip scored for several methods/seeds enters the reference set once
            key = (clip.content_hash, repr(sorted(settings.items())))
            if key not in refs:
                refs[key] = self.reference_features(pair.reference, clip, settings)
            gens.append(self.generated_features(pair.generated))
        if not gens:
            raise ValueError("fid: score_set got no (video, clip) pairs")
        return fid_from_feature_sets(np.concatenate(gens), np.concatenate(list(refs.values())),
                                     self.options["min_samples"])
