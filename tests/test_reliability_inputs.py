"""Issue 24: nothing silently wrong. Inputs as people save them are read as they meant or refused
naming the file; names never collide; the store and its files agree; a gate never passes on
nothing. One test per class of the issue; each names what it pinned down."""
from __future__ import annotations

import codecs
import json
import os
import re
import shutil
import signal
import sqlite3
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter
from test_reliability import GRID, grid

from motiongrid.bench import weights
from motiongrid.bench.api import Method
from motiongrid.bench.cli import main
from motiongrid.bench.clip import MaskError, TracksError
from motiongrid.bench.config import load_config
from motiongrid.bench.files import TextFileError, file_stem
from motiongrid.bench.store import SCHEMA_VERSION, Store
from motiongrid.bench.video import Video, VideoError, read_video, to_uint8, write_video
from motiongrid.datasets.folder import FolderClipSet, export_clips
from motiongrid.datasets.shapes import PRESETS, ShapesClipSet

ROOT = Path(__file__).resolve().parent.parent


def run(tmp_path: Path, out: Path, text: str = GRID) -> int:
    return main(["run", str(grid(tmp_path, text)), "--out", str(out), "--quiet", "--device", "cpu"])


# ---- 1. editing-case inputs are read as the user meant, or refused ---------------------------------

@pytest.fixture(scope="module")
def edit_case(tmp_path_factory) -> Path:
    """One editing case in the released layout (0/255 grey PNG masks, frame_<i>.png)."""
    root = tmp_path_factory.mktemp("edit")
    export_clips(ShapesClipSet(**{**PRESETS["edit"], "count": 1, "seed": 1000}).load(), root)
    return root


def _case(edit_case: Path, tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "set"
    shutil.copytree(edit_case, root)
    return root, next(p for p in root.iterdir() if p.is_dir())


def _inputs(root: Path):
    clip = FolderClipSet(root=str(root)).load()[0]
    return clip, clip.edit.inputs(clip)


def _repaint(folder: Path, masks: torch.Tensor, encode) -> None:
    """Rewrite every mask in ``folder`` as ``encode(bool mask) -> PIL image``."""
    for i, inside in enumerate(masks.numpy()):
        encode(inside).save(folder / f"frame_{i}.png")


def _palette(inside: np.ndarray) -> Image.Image:
    img = Image.fromarray(inside.astype(np.uint8), mode="L").convert("P")
    img.putpalette([0, 0, 0, 128, 0, 0] + [200] * 762)   # DAVIS: index 0 background, 1 dark red
    img.putdata(inside.astype(np.uint8).ravel().tolist())
    return img


def test_edit_case_inputs_are_read_as_meant_or_refused(edit_case, tmp_path):
    root, case = _case(edit_case, tmp_path)
    _, want = _inputs(root)
    assert want.source_masks.any() and want.target_masks.any()

    # masks as people save them: a dark colour on black (RGB), 0/1 single channel, a palette PNG.
    # Was: all three read as empty masks (mean grey <= 0.5), silently.
    def dark_blue(m):
        rgb = np.zeros((*m.shape, 3), np.uint8)
        rgb[m] = (0, 0, 128)
        return Image.fromarray(rgb)

    _repaint(case / "source_masks", want.source_masks, dark_blue)
    _repaint(case / "predicted_masks", want.target_masks, lambda m: Image.fromarray(m.astype(np.uint8)))
    _, got = _inputs(root)
    assert torch.equal(got.source_masks, want.source_masks) and torch.equal(got.target_masks, want.target_masks)
    _repaint(case / "source_masks", want.source_masks, _palette)
    assert torch.equal(_inputs(root)[1].source_masks, want.source_masks)

    # a soft mask (anti-aliased edge) is ambiguous: refused naming the file
    soft = case / "source_masks" / "frame_1.png"
    Image.fromarray((want.source_masks[1].numpy() * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(2)).save(soft)
    with pytest.raises(MaskError, match=re.escape(str(soft)) + ".*ambiguous mask"):
        _inputs(root)
    # a mask folder that marks nothing is refused (was: an empty region, silently)
    root, case = _case(edit_case, tmp_path / "empty")
    _repaint(case / "predicted_masks", want.target_masks, lambda m: Image.fromarray(np.zeros(m.shape, np.uint8)))
    with pytest.raises(MaskError, match="predicted_masks: every mask is empty"):
        _inputs(root)

    # a frame whose name does not fit the numbering is named, never sorted in (was: "frame_2 copy"
    # sorted after frame_2 and every later frame shifted by one against the poses)
    root, case = _case(edit_case, tmp_path / "names")
    stray = case / "source_images" / "frame_2 copy.png"
    shutil.copy(case / "source_images" / "frame_2.png", stray)
    with pytest.raises(VideoError, match=re.escape(str(stray)) + ": frame name does not fit"):
        _inputs(root)
    stray.unlink()
    gap = case / "source_poses" / "frame_3.png"
    gap.rename(case / "source_poses" / "frame_99.png")
    with pytest.raises(VideoError, match="frame_4.png: frame numbers .* go from 2 to 4 .* missing or misnamed"):
        _inputs(root)

    # a ground truth with another frame count is an input error of the case (was: not checked)
    root, case = _case(edit_case, tmp_path / "gt")
    last = max((case / "ground_truth").iterdir(), key=lambda p: int(p.stem.split("_")[1]))
    last.unlink()
    with pytest.raises(VideoError, match="ground_truth has shape"):
        _inputs(root)
    clip = FolderClipSet(root=str(root)).load()[0]
    with pytest.raises(VideoError, match="ground_truth has shape"):   # reference metrics meet it too
        _ = clip.scoring_reference().video

    # tracks of another length, and a corrupt tracks file, name the file (was: BadZipFile, a bug)
    root, case = _case(edit_case, tmp_path / "tracks")
    npz = case / "ground_truth_tracks.npz"
    with np.load(npz) as data:
        np.savez(npz, tracks=data["tracks"][:-1], visibility=data["visibility"][:-1])
    with pytest.raises(VideoError, match="ground_truth_tracks cover"):
        _inputs(root)
    npz.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(TracksError, match=re.escape(str(npz)) + ": cannot read tracks file"):
        FolderClipSet(root=str(root)).load()


# ---- 3. files as people save them ------------------------------------------------------------------

def _windows(text: str, bom: bytes = codecs.BOM_UTF8, encoding: str = "utf-8") -> bytes:
    return bom + text.replace("\n", "\r\n").encode(encoding)


def test_bom_and_crlf_in_toml_yaml_and_csv_are_read_as_their_content(tmp_path):
    # was: a BOM made the TOML "not valid TOML" and the CSV's first column "\ufeffid"
    plain = grid(tmp_path)
    saved = tmp_path / "excel.toml"
    saved.write_bytes(_windows('name = "Grüße"\n' + GRID))
    config, _ = load_config(saved)
    assert config.name == "Grüße" and config.model_dump(exclude={"name"}) == load_config(plain)[0].model_dump(exclude={"name"})

    frames = torch.rand(3, 3, 8, 8)
    write_video(Video(frames), tmp_path / "a.mp4")
    rows = "id,path,prompt\nclip-a,a.mp4,\"a cat,\nwalking\"\n"
    manifests = {"manifest.csv": _windows(rows),
                 "utf16.csv": _windows(rows, codecs.BOM_UTF16_LE, "utf-16-le"),
                 "manifest.yaml": _windows("- id: clip-a\n  path: a.mp4\n  prompt: |\n    a cat,\n    walking\n")}
    for name, data in manifests.items():
        (tmp_path / name).write_bytes(data)
        (clip,) = FolderClipSet(root=str(tmp_path), manifest=name).load()
        assert (clip.id, clip.prompt.strip()) == ("clip-a", "a cat,\nwalking"), name
    (tmp_path / "latin1.csv").write_bytes(rows.replace("cat", "café").encode("cp1252"))
    with pytest.raises(TextFileError, match=r"latin1.csv: not UTF-8 text .* save it as UTF-8"):
        FolderClipSet(root=str(tmp_path), manifest="latin1.csv").load()


# ---- 4. names never collide ------------------------------------------------------------------------

def test_clip_ids_that_look_alike_keep_their_own_reference_and_preview(tmp_path):
    # was: "视频一" and "视频二" were both references/_.mp4, so the second clip's preview showed the first
    ids = ["视频一", "视频二", "a b", "a_b", "A_b", "x"]
    stems = [file_stem(i) for i in ids]
    assert len({s.lower() for s in stems}) == len(ids)          # distinct on case-insensitive disks too
    assert file_stem("x") == "x" and file_stem("a_b") == "a_b"  # plain ids keep their names
    root = tmp_path / "set"
    root.mkdir()
    for n in range(len(ids)):
        write_video(Video(torch.full((4, 3, 16, 16), n / 8)), root / f"v{n}.mp4")
    (root / "manifest.yaml").write_text(json.dumps([{"id": c, "path": f"v{n}.mp4", "prompt": "p"}
                                                    for n, c in enumerate(ids)]))
    text = GRID.replace('set = "shapes"\nlimit = 2\noptions = { size = 24, frames = 4 }',
                        f'set = "folder"\noptions = {{ root = "{root}" }}')
    out = tmp_path / "run"
    assert run(tmp_path, out, text) == 0
    refs = json.loads((out / "run.json").read_text())["reference_videos"]
    assert len(set(refs.values())) == len(ids)
    for n, cid in enumerate(ids):
        shown = to_uint8(read_video(out / refs[cid]).frames)
        assert torch.equal(shown, to_uint8(torch.full((4, 3, 16, 16), n / 8))), cid
    assert main(["report", str(out), "--previews", str(len(ids))]) == 0
    previews = sorted((out / "report" / "figures").glob("preview-*.gif"))
    assert len(previews) == len(ids)
    # clips make writes look-alike ids to distinct files too, and they read back as themselves
    clips = FolderClipSet(root=str(root)).load()
    export_clips(clips, tmp_path / "made")
    again = FolderClipSet(root=str(tmp_path / "made")).load()
    assert [c.id for c in again] == ids and [c.source_hash for c in again] != [again[0].source_hash] * len(ids)


# ---- 5. the store and its files agree ---------------------------------------------------------------

def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_store_and_files_agree_in_content_and_permissions(tmp_path, capsys, caplog):
    out = tmp_path / "run"
    old = os.umask(0o002)   # a shared group directory: the group may read (and write) the run
    try:
        assert run(tmp_path, out) == 0
    finally:
        os.umask(old)
    # was: run.json, videos and references were 0600 (mkstemp's mode) beside a 0664 store
    store_mode = _mode(out / "results.sqlite")
    assert store_mode == 0o664
    files = [out / "run.json", *(out / "videos").iterdir(), *(out / "references").iterdir()]
    assert {f.name: _mode(f) for f in files} == {f.name: store_mode for f in files}

    # a video deleted or cut short while its row says ok: run re-generates it (was: skipped as
    # finished forever), report and compare say so (was: silent)
    videos = sorted((out / "videos").iterdir())
    videos[0].unlink()
    videos[1].write_bytes(videos[1].read_bytes()[:100])
    capsys.readouterr()
    assert run(tmp_path, out) == 0
    captured = capsys.readouterr()
    assert "done: 2 ok, 0 failed, 2 already finished" in captured.out
    assert "2 of 4 cells stored ok have no readable video" in caplog.text and "running them again" in caplog.text
    assert all(read_video(v).num_frames == 4 for v in videos)
    videos[0].unlink()
    assert main(["report", str(out), "--previews", "0"]) == 0
    assert "1 of 4 cells stored ok have no readable video" in (out / "report" / "report.md").read_text()
    capsys.readouterr()
    main(["compare", str(out), str(out)])
    assert "new: 1 of 4 cells stored ok have no readable video" in capsys.readouterr().out


# ---- 6. a gate never passes on nothing ---------------------------------------------------------------

def test_compare_fails_when_nothing_is_comparable_and_counts_a_partial_overlap(tmp_path, capsys):
    new = tmp_path / "new"
    assert run(tmp_path, new) == 0
    empty = tmp_path / "empty"
    Store(empty / "results.sqlite").close()
    other = tmp_path / "other"   # same clips, another method: no label in common
    assert run(tmp_path, other, GRID.replace('name = "static"', 'name = "static"\nlabel = "still"').replace(
        '[[methods]]\nname = "reference"\n', "")) == 0
    for base in (empty, other):
        capsys.readouterr()
        # was: exit 0 "no regression" with 0 cells compared
        assert main(["compare", str(base), str(new)]) == 1, base
        text = capsys.readouterr().out
        assert "❌ nothing compared" in text and "**nothing was compared**" in text
    # a subset: passes with --allow-missing, and says how much was compared
    subset = tmp_path / "subset"
    assert run(tmp_path, subset, GRID.replace("limit = 2", "limit = 1")) == 0
    capsys.readouterr()
    assert main(["compare", str(new), str(subset), "--allow-missing"]) == 0
    assert "Cells: 2 of 4 base cells are in new (2 ok in both); 2 only in base, 0 only in new (of 2)." \
        in capsys.readouterr().out


# ---- 7. weights import checks what weights list checks ---------------------------------------------

def test_weights_import_refuses_what_list_calls_wrong_and_unknown_names_exit_2(isolated, capsys):
    target = isolated / "installed" / "model.safetensors"
    weights.register(weights.WeightFile(name="test-nodigest", description="t", url="file:///x", target=lambda: target))
    src = isolated / "copied" / "test-nodigest"
    src.mkdir(parents=True)
    (src / "model.safetensors").write_bytes(b"\xff" * 4096)   # no digest known, header does not load
    results = {r.name: r for r in weights.import_dir(isolated / "copied")}
    # was: "installed", and then `weights list` called it WRONG
    assert results["test-nodigest"].status == "rejected" and "not a safetensors file" in results["test-nodigest"].detail
    assert not target.exists()
    for argv in (["weights", "fetch", "nope"], ["weights", "verify", "lpips-alexnet", "nope"]):
        capsys.readouterr()
        assert main(argv) == 2   # was: "nope: FAILED ..." and exit 1, like a failed download
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err
        assert err.startswith(f"motiongrid weights {argv[1]}: error: unknown weight 'nope'; available: ")
        assert "lpips-alexnet" in err and "cotracker3-offline" in err


# ---- 9. a signal during model loading stops before the first cell -----------------------------------

def test_a_signal_during_model_loading_stops_before_the_first_cell(tmp_path, capsys, throwaway_methods):
    @throwaway_methods.register("_test_slow_load")
    class _SlowLoad(Method):
        def load(self, params):
            os.kill(os.getpid(), signal.SIGTERM)   # Ctrl-C / a scheduler's SIGTERM while weights load

        def generate(self, clip, params, seed):
            return Video(clip.frames.clone(), clip.video.fps)

    out = tmp_path / "run"
    # was: the cell ran to the end (minutes for a real model) and was stored before the run stopped
    assert run(tmp_path, out, GRID.replace('name = "static"', 'name = "_test_slow_load"')
               .replace('[[methods]]\nname = "reference"\n', "")) == 143
    assert "stopped by SIGTERM after 0 of 2 cells" in capsys.readouterr().err
    assert sqlite3.connect(out / "results.sqlite").execute("SELECT COUNT(*) FROM cells").fetchone()[0] == 0


# ---- 10. the reliability table (docs/reliability.md) matches the code ---------------------------------

def test_readme_reliability_table_names_real_tests_and_the_store_schema_version():
    text = (ROOT / "docs" / "reliability.md").read_text()
    table = text.split("## Guarantees", 1)[1].split("\n## Exit codes", 1)[0]
    # was: "user_version = 1" while the store wrote 2
    assert f"`user_version` = {SCHEMA_VERSION}" in table
    for row in [line for line in table.splitlines() if line.startswith("| **")]:
        for ref in re.findall(r"`((?:tests/\w+\.py::)?test_\w+)`", row.rsplit("|", 2)[1]):
            path, _, name = ref.rpartition("::")
            file = path or "tests/test_reliability.py"   # as the table's heading says
            assert f"def {name}(" in (ROOT / file).read_text(), f"docs/reliability.md names {ref} ({file}), which does not exist"
