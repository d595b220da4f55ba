"""Write any clip set to disk in the ``folder`` clip set's format (mp4 + manifest + tracks)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from motiongrid.datasets.clip import Clip
from motiongrid.datasets.video import write_video


def export_clips(clips: list[Clip], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for clip in clips:
        row = {"id": clip.id, "path": f"{clip.id}.mp4", "prompt": clip.prompt}
        write_video(clip.video, out / row["path"])
        if clip.target_prompt:
            row["target_prompt"] = clip.target_prompt
        if clip.tracks is not None:
            row["tracks"] = f"{clip.id}.tracks.npz"
            np.savez_compressed(out / row["tracks"], tracks=clip.tracks.numpy(),
                                visibility=clip.visibility.numpy())
        rows.append(row)
        clip.release()
    manifest = out / "manifest.yaml"
    manifest.write_text(yaml.safe_dump({"clips": rows}, sort_keys=False))
    return manifest
