"""MotionClone: training-free motion cloning by temporal-attention guidance (docs/methods.md).

``guidance`` holds the algorithm (attention recording, energy, extraction, guided DDIM);
``adapters`` the registered methods ``motionclone`` and ``unguided``.
"""
from motiongrid.methods.motionclone import adapters  # noqa: F401  (registers the methods)
