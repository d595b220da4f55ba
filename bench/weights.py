"""Weights manager: one registry of every weight file the harness may need.

Each :class:`WeightFile` says where it comes from (a URL, or a Hugging Face repo), how to check
it (sha256 and size where known) and — the important part — where the *consuming library*
looks for it (``target``): torchvision/torch.hub read ``$TORCH_HOME/hub/checkpoints``, clean-fid
reads a hard-coded ``/tmp`` path, CoTracker's hub entrypoint needs a repo copy under
``torch.hub.get_dir()``. Files that a library does not look up itself (open_clip weights, the
diffusion models) live under the motiongrid weights folder and are passed to the library as
explicit paths.

Offline-first: ``available``/``require`` never touch the network. ``fetch`` downloads on a
connected machine and fails within seconds when offline (``HF_HUB_OFFLINE=1``,
``MOTIONGRID_OFFLINE=1`` or no route to the host). An air-gapped machine gets its files with
``motiongrid weights fetch NAME --into DIR`` elsewhere, then ``motiongrid weights import DIR``.

Other modules register their own entries at import time::

    from motiongrid.bench import weights
    weights.register(weights.WeightFile(
        name="toy-unet", description="...", repo_id="org/repo", kind="hf_repo",
        target=lambda: weights.weights_home() / "toy-unet", used_by=("methods.toy",)))
"""
from __future__ import annotations

import importlib
import json
import logging
import os
import platform
import shutil
import socket
import sys
import tempfile
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from motiongrid.bench import registry
from motiongrid.bench.errors import UserError
from motiongrid.bench.hashing import sha256_file

log = logging.getLogger(__name__)

Kind = Literal["file", "dir", "hf_repo"]


class WeightsMissing(UserError, RuntimeError):
    """A weight file is absent or wrong; the message names it and the command that fixes it."""


class WeightsOffline(WeightsMissing):
    """A download was asked for on a machine that cannot reach the source."""


@dataclass(frozen=True)
class WeightFile:
    """One weight file (kind 'file'), folder (kind 'dir', e.g. a torch.hub repo copy from a zip
    archive) or Hugging Face repo snapshot (kind 'hf_repo').

    Source: ``url`` (file: downloaded as is; dir: a .zip whose single top folder becomes the
    target) or ``repo_id`` (+ ``filename`` for one file of that repo, + ``revision``).
    ``sha256`` may be a full digest or a prefix (torch.hub file names carry an 8-hex prefix);
    None when no authoritative digest is known — never a guess. ``size`` in bytes, or None.
    ``target`` is called each time (it reads env vars such as TORCH_HOME at call time).
    ``required`` lists files that must exist inside a 'dir'/'hf_repo' target for it to count
    as present. ``alternatives`` returns other paths the library itself would also find
    (e.g. a Hugging Face cache hit); they are accepted by ``locate`` but never written.
    """
    name: str
    description: str
    target: Callable[[], Path]
    url: str | None = None
    repo_id: str | None = None
    filename: str | None = None
    revision: str | None = None
    sha256: str | None = None
    size: int | None = None
    used_by: tuple[str, ...] = ()
    kind: Kind = "file"
    required: tuple[str, ...] = ()
    allow_patterns: tuple[str, ...] | None = None
    alternatives: Callable[[], list[Path]] | None = field(default=None, compare=False)
    # Where a person gets a file no URL can fetch (e.g. a Google Drive folder): such an entry
    # is import-only; its fix message names that place and `motiongrid weights import DIR`.
    import_only: str | None = None
    # A folder entry that a person may also bring as ONE file in another format (e.g. a released
    # original-format checkpoint): `weights import` converts ``convert_from`` (a file name) into
    # the entry's folder with ``converter`` ("module:function", called as f(src_file, dst_dir)).
    convert_from: str | None = None
    converter: str | None = None
    # A caveat `weights list` prints under its table (e.g. "not the file the paper used").
    note: str | None = None

    def __post_init__(self):
        if self.kind not in ("file", "dir", "hf_repo"):
            raise ValueError(f"weight {self.name!r}: kind must be 'file', 'dir' or 'hf_repo', got {self.kind!r}")
        if not (self.url or self.repo_id or self.import_only):
            raise ValueError(f"weight {self.name!r}: needs a source (url, repo_id, or import_only)")
        if self.kind == "hf_repo" and not self.repo_id:
            raise ValueError(f"weight {self.name!r}: kind 'hf_repo' needs repo_id")
        if (self.convert_from is None) != (self.converter is None) or (self.converter and self.kind == "file"):
            raise ValueError(f"weight {self.name!r}: convert_from and converter go together, on a folder entry")
        if self.sha256 is not None and not all(c in "0123456789abcdef" for c in self.sha256.lower()):
            raise ValueError(f"weight {self.name!r}: sha256 must be hex, got {self.sha256!r}")

    @property
    def source(self) -> str:
        if self.import_only and not (self.url or self.repo_id):
            return f"import only: {self.import_only}"
        if self.url:
            return self.url
        suffix = f"/{self.filename}" if self.filename else ""
        rev = f"@{self.revision}" if self.revision else ""
        return f"hf://{self.repo_id}{rev}{suffix}"


def register(entry: WeightFile, replace: bool = False) -> WeightFile:
    """Add an entry to the weights registry (``registry.weights``). Registering the same name
    twice with a different entry is an error unless ``replace`` (tests use it to point an entry
    at a locally made file)."""
    old = registry.weights._items.get(entry.name)
    if old is not None and old == entry:
        return old                      # the same entry again (e.g. a test's replace that changes nothing)
    if old is not None:
        if not replace:
            raise ValueError(f"weight {entry.name!r} is registered twice with different settings")
        registry.weights.unregister(entry.name)
    return registry.weights.register(entry.name)(entry)


def entries(load_all: bool = True) -> list[WeightFile]:
    """Every entry; ``load_all`` also imports the method and metric packages that register theirs."""
    names = registry.weights.names() if load_all else sorted(registry.weights._items)
    return [registry.weights.get(name) for name in names]


def get(name: str) -> WeightFile:
    return registry.weights.get(name)


def weights_home() -> Path:
    """motiongrid's own weights folder (for files no library looks up by itself)."""
    if os.environ.get("MOTIONGRID_WEIGHTS"):
        return Path(os.environ["MOTIONGRID_WEIGHTS"]).expanduser()
    base = os.environ.get("MOTIONGRID_CACHE", str(Path.home() / ".cache" / "motiongrid"))
    return Path(base).expanduser() / "weights"


def torch_hub_dir() -> Path:
    """torch.hub's folder, resolved the way torch does it (TORCH_HOME read at call time).
    Without importing torch when it is not loaded yet (listing weights stays quick); once it
    is, torch's own answer (``torch.hub.set_dir`` may have moved it)."""
    if "torch" in sys.modules:
        import torch.hub

        return Path(torch.hub.get_dir())
    # torch.hub._get_torch_home(): $TORCH_HOME, else $XDG_CACHE_HOME/torch, else ~/.cache/torch
    home = os.getenv("TORCH_HOME", os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "torch"))
    return Path(os.path.expanduser(home)) / "hub"


def torch_hub_checkpoint(filename: str) -> Callable[[], Path]:
    return lambda: torch_hub_dir() / "checkpoints" / filename


def cleanfid_dir() -> Path:
    """The folder clean-fid reads Inception from: hard-coded '/tmp' ('./' on Windows) in
    cleanfid.features. MOTIONGRID_CLEANFID_DIR moves it, but then only motiongrid's FID (which
    hands the path to clean-fid's InceptionV3W) finds it, not a direct cleanfid.compute_fid."""
    if os.environ.get("MOTIONGRID_CLEANFID_DIR"):
        return Path(os.environ["MOTIONGRID_CLEANFID_DIR"]).expanduser()
    return Path("./" if platform.system() == "Windows" else "/tmp")


def hf_cache_file(repo_id: str, filename: str) -> Callable[[], list[Path]]:
    """An alternative location: the file in the Hugging Face cache, if a previous hub download
    put it there (looked up without network)."""
    def find() -> list[Path]:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            return []
        hit = try_to_load_from_cache(repo_id, filename)
        return [Path(hit)] if isinstance(hit, str) else []
    return find


# ---- presence and checks ------------------------------------------------------------------

def fix_command(name: str) -> str:
    entry = registry.weights._items.get(name)
    if entry is not None and entry.import_only and not (entry.url or entry.repo_id):
        brought = entry.convert_from or entry.target().name
        converted = " (converted on import)" if entry.convert_from else ""
        return (f"download {brought} from {entry.import_only} (no URL can fetch it) into "
                f"DIR/{name}/, then `motiongrid weights import DIR`{converted}")
    return (f"`motiongrid weights fetch {name}` (on a machine with network), or on an offline "
            f"machine: `motiongrid weights fetch {name} --into DIR` elsewhere, copy DIR here, then "
            f"`motiongrid weights import DIR`")


def _present(entry: WeightFile, path: Path) -> str | None:
    """None when ``path`` holds the entry (cheap checks: existence, size, required files)."""
    if entry.kind == "file":
        if not path.is_file():
            return f"{path} not found"
        if entry.size is not None and path.stat().st_size != entry.size:
            return f"{path} has {path.stat().st_size} bytes, expected {entry.size}"
        return None
    if not path.is_dir():
        return f"{path} not found"
    missing = [r for r in entry.required if not (path / r).exists()]
    if missing:
        return f"{path} lacks {', '.join(missing)}"
    if not entry.required and not any(path.iterdir()):
        return f"{path} is empty"
    return None


def locate(name: str) -> Path | None:
    """Where the entry is found now (its target, else an alternative), or None."""
    entry = get(name)
    target = entry.target()
    if _present(entry, target) is None:
        return target
    for alt in (entry.alternatives() if entry.alternatives else []):
        if _present(entry, alt) is None:
            return alt
    return None


def available(name: str) -> str | None:
    """None if the weight is in place; otherwise the reason and the exact fix command.
    Never downloads and never hashes (see ``verify``)."""
    entry = get(name)
    if locate(name) is not None:
        return None
    why = _present(entry, entry.target())
    return f"weights {name!r} ({entry.description}) missing: {why}. Fix: {fix_command(name)}"


def require(name: str) -> Path:
    """Path of the weight, or WeightsMissing with the fix command."""
    reason = available(name)
    if reason is not None:
        raise WeightsMissing(reason)
    return locate(name)


def _check_file(entry: WeightFile, path: Path) -> str | None:
    """None if size and sha256 (where known) match; else what is wrong."""
    if entry.size is not None and path.stat().st_size != entry.size:
        return f"{path} has {path.stat().st_size} bytes, expected {entry.size}"
    if entry.sha256:
        digest = sha256_file(path)
        if not digest.startswith(entry.sha256.lower()):
            return f"{path} sha256 {digest[:16]}… does not match expected {entry.sha256[:16]}…"
    return None


# torch.save's pre-1.6 format opens with a pickled magic number (torch/serialization.py)
_LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0a" + (0x1950a86a20f9469cfc6c).to_bytes(10, "little")
_TORCH_SUFFIXES = (".pth", ".pt", ".ckpt")


def load_problem(path: Path) -> str | None:
    """None when ``path`` looks loadable by its library, judged from its format's header
    without loading it (so without torch): torch files are zip archives (or the legacy pickle
    format), safetensors files a length-prefixed JSON header. Other suffixes are not judged."""
    suffix = path.suffix.lower()
    if suffix in _TORCH_SUFFIXES:
        with open(path, "rb") as fh:
            head = fh.read(len(_LEGACY_TORCH_MAGIC))
        if not (zipfile.is_zipfile(path) or head == _LEGACY_TORCH_MAGIC):
            return f"{path} is not a torch checkpoint (neither a torch.save zip archive nor the legacy format)"
    elif suffix == ".safetensors" and safetensors_header(path) is None:
        return f"{path} is not a safetensors file (its header does not parse)"
    return None


def safetensors_header(path: Path) -> dict | None:
    """A safetensors file's JSON header (tensor name -> dtype, shape, offsets; plus
    ``__metadata__``), read without torch; None when it does not parse."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        raw = fh.read(n) if 8 + n <= size else b""
    try:
        header = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return header if isinstance(header, dict) else None


def content_problem(entry: WeightFile, path: Path) -> str | None:
    """What ``verify`` and ``import`` both check: a file's size and sha256 (where known) and its
    header; a folder's required files' headers. None when nothing is wrong."""
    if entry.kind == "file":
        return _check_file(entry, path) or load_problem(path)
    files = [path / r for r in entry.required if (path / r).is_file()]
    return next(filter(None, map(load_problem, files)), None)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    path: Path | None = None
    state: Literal["verified", "unverified", "wrong", "missing"] = "missing"


def verify(name: str) -> Check:
    """Size, sha256 (where known) and a header check of the located file; for folders, the
    required files are present and their headers check. ``state`` says which:
    verified (digest matched), unverified (present and loadable, no digest to check against),
    wrong (size or digest mismatch, or does not load), missing."""
    entry = get(name)
    path = locate(name)
    if path is None:
        return Check(name, False, available(name) or "missing")
    problem = content_problem(entry, path)
    if problem:
        return Check(name, False, f"{problem}. Fix: delete it and {fix_command(name)}", path, "wrong")
    if entry.kind != "file":
        return Check(name, True, "present (folder; no checksum defined)", path, "unverified")
    if entry.sha256:
        return Check(name, True, "sha256 ok", path, "verified")
    return Check(name, True, "present (no published sha256 to check against)", path, "unverified")


# ---- getting files: fetch (connected machine) and import (air-gapped machine) ---------------

def offline_reason() -> str | None:
    for var in ("MOTIONGRID_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return f"{var}={os.environ[var]}"
    return None


def _probe(host: str, timeout: float = 5.0) -> str | None:
    """Fail fast instead of letting a library retry for ~30 s: one TCP connect to the host."""
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return None
    except OSError as exc:
        return f"cannot reach {host} ({exc.__class__.__name__}: {exc})"


def _ensure_online(entry: WeightFile) -> None:
    if entry.url and urllib.parse.urlparse(entry.url).scheme == "file":
        return  # a local mirror needs no network
    host = urllib.parse.urlparse(entry.url).hostname if entry.url else "huggingface.co"
    reason = offline_reason() or _probe(host)
    if reason:
        raise WeightsOffline(
            f"cannot fetch {entry.name!r} from {entry.source}: offline ({reason}). On a machine "
            f"with network run `motiongrid weights fetch {entry.name} --into DIR`, copy DIR here, "
            f"then `motiongrid weights import DIR`")


def _atomic_copy_file(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.part")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _atomic_copy_dir(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.part")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(src, tmp, symlinks=False)
    if dst.exists():
        shutil.rmtree(dst)
    os.replace(tmp, dst)


def _download_url(url: str, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def _single_top_folder(root: Path) -> Path:
    children = [p for p in root.iterdir() if not p.name.startswith(".")]
    return children[0] if len(children) == 1 and children[0].is_dir() else root


def _stage_name(entry: WeightFile) -> str:
    """Name of the entry's file/folder inside a transfer DIR (DIR/<entry name>/<this>)."""
    return entry.target().name


def fetch(name: str, into: str | Path | None = None) -> Path:
    """Download ``name`` to its target, or to ``into/<name>/`` for carrying to another machine.
    Checks size/sha256 where known. Raises WeightsOffline quickly when offline."""
    entry = get(name)
    if entry.import_only and not (entry.url or entry.repo_id):
        raise WeightsMissing(f"weights {name!r} cannot be fetched by URL. Fix: {fix_command(name)}")
    dst = Path(into) / entry.name / _stage_name(entry) if into else entry.target()
    _ensure_online(entry)
    if entry.kind == "file" and entry.url:
        _download_url(entry.url, dst)
    elif entry.kind == "file":
        from huggingface_hub import hf_hub_download

        got = Path(hf_hub_download(entry.repo_id, entry.filename, revision=entry.revision,
                                   local_dir=dst.parent))
        if got != dst:
            os.replace(got, dst)
    elif entry.kind == "hf_repo":
        from huggingface_hub import snapshot_download

        snapshot_download(entry.repo_id, revision=entry.revision, local_dir=dst,
                          allow_patterns=list(entry.allow_patterns) if entry.allow_patterns else None)
    else:  # 'dir' from a zip archive (torch.hub repo copies come as GitHub archive zips)
        with tempfile.TemporaryDirectory() as tmp:
            archive = Path(tmp) / "archive.zip"
            _download_url(entry.url, archive)
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(Path(tmp) / "x")
            _atomic_copy_dir(_single_top_folder(Path(tmp) / "x"), dst)
    if entry.kind == "file":
        problem = content_problem(entry, dst)
        if problem:
            dst.unlink(missing_ok=True)
            raise WeightsMissing(f"downloaded {entry.name!r} from {entry.source} but {problem}; file removed")
    problem = _present(entry, dst)
    if problem:
        raise WeightsMissing(f"fetched {entry.name!r} from {entry.source} but {problem}")
    return dst


@dataclass
class ImportResult:
    name: str
    status: Literal["installed", "skipped", "rejected", "absent"]
    detail: str


def _import_candidates(entry: WeightFile, root: Path) -> list[Path]:
    stage = _stage_name(entry)
    return [root / entry.name / stage, root / entry.name, root / stage]


def import_dir(directory: str | Path, overwrite: bool = False) -> list[ImportResult]:
    """Install weights copied from a connected machine. For each registered entry, DIR may hold
    ``DIR/<name>/<target file or folder name>`` (what ``fetch --into DIR`` writes),
    ``DIR/<name>`` itself, or ``DIR/<target file or folder name>``. Files are checked as
    ``verify`` checks them (size, sha256 where known, header) before they are copied to the
    entry's target. An entry with a ``converter`` also takes its ``convert_from`` file
    (``DIR/<name>/<file>`` or ``DIR/<file>``) and installs the converted folder."""
    root = Path(directory).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"weights import: {root} is not a folder")
    # Entries converted from a single file go last: a converter may need another entry of the
    # same DIR (e.g. the SD1.5 configs a released checkpoint is converted with).
    ordered = sorted(entries(), key=lambda e: e.converter is not None)
    results = {entry.name: _import_entry(entry, root, overwrite) for entry in ordered}
    return [results[entry.name] for entry in entries()]


def _import_entry(entry: WeightFile, root: Path, overwrite: bool) -> ImportResult:
    src = None
    for cand in _import_candidates(entry, root):
        if entry.kind == "file" and cand.is_file():
            src = cand
            break
        if entry.kind != "file" and cand.is_dir() and _present(entry, cand) is None:
            src = cand
            break
    if src is None and entry.convert_from:
        src = next((c for c in (root / entry.name / entry.convert_from, root / entry.convert_from) if c.is_file()), None)
    if src is None:
        return ImportResult(entry.name, "absent", f"not in {root}")
    target = entry.target()
    converting = entry.kind != "file" and src.is_file()
    problem = load_problem(src) if converting else content_problem(entry, src)   # what `weights list` calls WRONG
    if problem:
        return ImportResult(entry.name, "rejected", problem)
    if _present(entry, target) is None and not overwrite:
        return ImportResult(entry.name, "skipped", f"already at {target} (use --overwrite to replace)")
    try:
        if converting:
            _convert_into(entry, src, target)
        else:
            (_atomic_copy_file if entry.kind == "file" else _atomic_copy_dir)(src, target)
    except OSError as exc:
        return ImportResult(entry.name, "rejected", f"cannot write {target}: {exc}")
    except WeightsMissing as exc:
        return ImportResult(entry.name, "rejected", f"cannot convert {src.name}: {exc}")
    except Exception as exc:  # the converting library's own error about the file's contents
        return ImportResult(entry.name, "rejected", f"cannot convert {src}: {type(exc).__name__}: {exc}")
    how = "converted" if converting else "copied"
    return ImportResult(entry.name, "installed", f"{src} -> {target} ({how})")


def _convert_into(entry: WeightFile, src: Path, target: Path) -> None:
    """Run the entry's converter into a staging folder beside the target, check the result
    holds the entry's required files, then swap it in (an interrupted conversion leaves no
    half-written target)."""
    module, _, function = entry.converter.partition(":")
    convert = getattr(importlib.import_module(module), function)
    stage = target.with_name(f".{target.name}.{os.getpid()}.part")
    shutil.rmtree(stage, ignore_errors=True)
    stage.parent.mkdir(parents=True, exist_ok=True)
    try:
        convert(src, stage)
        problem = _present(entry, stage)
        if problem:
            raise WeightsMissing(f"the converter wrote no complete folder: {problem}")
        if target.exists():
            shutil.rmtree(target)
        os.replace(stage, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


# ---- built-in entries ---------------------------------------------------------------------

COTRACKER_REPO = "facebookresearch/co-tracker"

register(WeightFile(
    name="lpips-alexnet",
    description="torchvision AlexNet ImageNet weights, the LPIPS(net='alex') backbone",
    url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    sha256="7be5be79",  # torch.hub's file-name hash prefix; the full digest is not published
    target=torch_hub_checkpoint("alexnet-owt-7be5be79.pth"),
    used_by=("metrics.lpips",),
))

register(WeightFile(
    name="cleanfid-inception",
    description="clean-fid's TorchScript Inception-v3 (TF 2015-12-05 port) for FID",
    url="https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
    target=lambda: cleanfid_dir() / "inception-2015-12-05.pt",
    used_by=("metrics.fid",),
))

register(WeightFile(
    name="openclip-vit-b-32-openai",
    description="open_clip ViT-B-32 with OpenAI weights (QuickGELU), for CLIP text alignment "
                "and temporal consistency",
    repo_id="timm/vit_base_patch32_clip_224.openai",
    filename="open_clip_model.safetensors",
    target=lambda: weights_home() / "open_clip" / "ViT-B-32-openai" / "open_clip_model.safetensors",
    alternatives=hf_cache_file("timm/vit_base_patch32_clip_224.openai", "open_clip_model.safetensors"),
    used_by=("metrics.clip",),
))

register(WeightFile(
    name="cotracker3-offline",
    description="CoTracker3 offline checkpoint (scaled_offline.pth) for torch.hub cotracker3_offline",
    url="https://huggingface.co/facebook/cotracker3/resolve/main/scaled_offline.pth",
    target=torch_hub_checkpoint("scaled_offline.pth"),
    used_by=("metrics.motion",),
))

register(WeightFile(
    name="cotracker-hub-repo",
    description="copy of the facebookresearch/co-tracker repo (main) that torch.hub loads the "
                "cotracker3_offline entrypoint from",
    url="https://github.com/facebookresearch/co-tracker/archive/refs/heads/main.zip",
    kind="dir",
    required=("hubconf.py", "cotracker"),
    target=lambda: torch_hub_dir() / "facebookresearch_co-tracker_main",
    used_by=("metrics.motion",),
))

register(WeightFile(
    name="raft-large-things",
    description="torchvision RAFT-large C_T_V1 (FlyingChairs+Things, ported from princeton-vl raft-things.pth, "
                "the checkpoint VBench uses) for warp_error and dynamic_degree",
    url="https://download.pytorch.org/models/raft_large_C_T_V1-22a6c225.pth",
    sha256="22a6c225",  # torch.hub's file-name hash prefix; the full digest is not published
    target=torch_hub_checkpoint("raft_large_C_T_V1-22a6c225.pth"),
    used_by=("metrics.flow",),
))

register(WeightFile(
    name="stylegan-v-i3d",
    description="StyleGAN-V's TorchScript I3D (Kinetics-400) for fvd, as common_metrics_on_video_quality loads it",
    url="https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1",
    target=lambda: weights_home() / "fvd" / "i3d_torchscript.pt",
    used_by=("metrics.fvd",),
))

register(WeightFile(
    name="resnet-50-kinetics",
    description="Hara et al.'s 3D ResNet-50 (Kinetics-400, shortcut B) for fid_vid, as DisCo loads it",
    import_only="the Google Drive folder linked from kenshohara/3D-ResNets-PyTorch (CVPR2018 branch), "
                "file resnet-50-kinetics.pth",
    target=lambda: weights_home() / "fid_vid" / "resnet-50-kinetics.pth",
    used_by=("metrics.fvd",),
))

register(WeightFile(
    name="dino-vitb16",
    description="DINO ViT-B/16 checkpoint (dino_vitbase16_pretrain.pth) for torch.hub dino_vitb16 (subject_consistency)",
    url="https://dl.fbaipublicfiles.com/dino/dino_vitbase16_pretrain/dino_vitbase16_pretrain.pth",
    target=torch_hub_checkpoint("dino_vitbase16_pretrain.pth"),
    used_by=("metrics.consistency",),
))

register(WeightFile(
    name="dino-hub-repo",
    description="copy of the facebookresearch/dino repo (main) that torch.hub loads dino_vitb16 from",
    url="https://github.com/facebookresearch/dino/archive/refs/heads/main.zip",
    kind="dir",
    required=("hubconf.py", "vision_transformer.py"),
    target=lambda: torch_hub_dir() / "facebookresearch_dino_main",
    used_by=("metrics.consistency",),
))
