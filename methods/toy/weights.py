"""The shipped toy checkpoint, registered with the weights manager (torch-free; imported when
weights are listed or looked up: ``registry.weights``' built-in modules)."""
from __future__ import annotations

from motiongrid.bench import weights
from motiongrid.methods.toy import toy_checkpoint_file

weights.register(weights.WeightFile(
    name="toy",
    description="toy world video diffusion model (EMA weights, ships with motiongrid)",
    target=toy_checkpoint_file,
    # It ships inside the package; the URL only names that place (there is no download).
    url=toy_checkpoint_file().as_uri(),
    used_by=("methods.toy",),
))
