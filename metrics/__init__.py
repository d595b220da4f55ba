"""metrics package (see README: one file per family).

The built-in metrics are declared here, so that listing them imports no torch; each module is
imported when a run or score first needs its class. A class's attributes must match its
declaration (tests/test_startup.py checks it).
"""
from motiongrid.bench.registry import metrics

_OPTIONS = "motiongrid.metrics.options"   # torch-free: listings and parsers read it

metrics.declare("psnr", "motiongrid.metrics.fidelity:PSNR", higher_is_better=True, needs=frozenset({"reference"}),
                Options=f"{_OPTIONS}:PSNROptions",
                description="peak signal-to-noise ratio vs the reference, dB, mean over frames (data_range 1, float64; "
                            "identical frames 100 dB)")
metrics.declare("ssim", "motiongrid.metrics.fidelity:SSIM", higher_is_better=True, needs=frozenset({"reference"}),
                Options=f"{_OPTIONS}:SSIMOptions",
                description="structural similarity vs the reference, mean over frames (gaussian sigma 1.5, valid region "
                            "as scikit-image)")
metrics.declare("l1", "motiongrid.metrics.fidelity:L1", higher_is_better=False, needs=frozenset({"reference"}),
                Options=f"{_OPTIONS}:BuiltinOptions",
                description="mean absolute pixel difference vs the reference in [0,1] units, mean over frames")
metrics.declare("lpips", "motiongrid.metrics.lpips:LPIPS", higher_is_better=False, needs=frozenset({"reference"}),
                Options=f"{_OPTIONS}:BuiltinOptions",
                description="LPIPS (AlexNet, v0.1) vs the reference, mean over frames")
metrics.declare("fid", "motiongrid.metrics.fid:FID", higher_is_better=False, needs=frozenset({"reference"}),
                Options=f"{_OPTIONS}:FIDOptions",
                description="Fréchet Inception distance over frames (clean-fid, clean mode); per cell flagged unstable, "
                            "set-level over all cells")
metrics.declare("clip_text", "motiongrid.metrics.clip:ClipText", higher_is_better=True, needs=frozenset({"prompt"}),
                Options=f"{_OPTIONS}:ClipOptions",
                description="CLIP text alignment: mean over frames of 100*max(cos(frame, prompt), 0) (open_clip)")
metrics.declare("temporal_consistency", "motiongrid.metrics.clip:TemporalConsistency", higher_is_better=True,
                needs=frozenset(),
                Options=f"{_OPTIONS}:ClipOptions",
                description="mean cosine similarity of CLIP image embeddings of consecutive frames (open_clip)")
metrics.declare("motion_fidelity", "motiongrid.metrics.motion:MotionFidelity", higher_is_better=True,
                needs=frozenset({"reference"}),
                Options=f"{_OPTIONS}:MotionFidelityOptions",
                description="motion fidelity from point tracks: paired (location-aware, same start points) and "
                            "DMT's location-agnostic symmetric and one-way variants")
metrics.declare("warp_error", "motiongrid.metrics.flow:WarpError", higher_is_better=False, needs=frozenset({"reference"}),
                Options=f"{_OPTIONS}:WarpErrorOptions",
                description="flow warping error: masked squared RGB error between each generated frame and the previous "
                            "one warped along the reference's flow (raft, farneback or exact gt); reference floor and "
                            "excess")
metrics.declare("dynamic_degree", "motiongrid.metrics.flow:DynamicDegree", higher_is_better=True, needs=frozenset(),
                Options=f"{_OPTIONS}:DynamicDegreeOptions",
                description="VBench dynamic degree: mean top-5% flow magnitude per frame pair, thresholded by "
                            "resolution; per cell magnitude and dynamic (0/1), per label the fraction of dynamic videos")
metrics.declare("fvd", "motiongrid.metrics.fvd:FVD", higher_is_better=False, needs=frozenset({"reference"}),
                Options=f"{_OPTIONS}:FVDOptions",
                description="Fréchet video distance, StyleGAN-V convention (TorchScript I3D, 224 short side + centre "
                            "crop, [-1,1], 400-d); per cell flagged unstable, set-level over all cells")
metrics.declare("fid_vid", "motiongrid.metrics.fvd:FIDVID", higher_is_better=False, needs=frozenset({"reference"}),
                Options=f"{_OPTIONS}:FIDVIDOptions",
                description="FID-VID as DisCo computes it: 3D ResNet-50 (Kinetics) 2048-d features of 16-frame "
                            "112x112 segments, averaged per video; per cell flagged unstable, set-level over all cells")
metrics.declare("subject_consistency", "motiongrid.metrics.consistency:SubjectConsistency", higher_is_better=True,
                needs=frozenset(),
                Options=f"{_OPTIONS}:BuiltinOptions",
                description="VBench subject consistency: DINO ViT-B/16 feature cosine of each frame to the previous "
                            "and to the first frame (clamped at 0, averaged)")
