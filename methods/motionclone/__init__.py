"""MotionClone: training-free motion cloning by temporal-attention guidance (docs/methods.md).

``guidance`` holds the algorithm (attention recording, energy, extraction, guided DDIM);
``adapters`` the registered methods ``motionclone`` and ``unguided`` (declared in
``motiongrid.methods``, so they are imported only when a run needs them); ``params`` their
parameters.
"""
