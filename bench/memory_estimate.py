"""Peak-memory estimates without running the numbers: shapes on torch's ``meta`` device.

A method's real-size networks are built on the meta device (parameters with shapes and dtypes,
no storage), and one cell's work runs as the method really does it; every tensor the device
would hold is then a meta tensor. :class:`MemoryEstimator` (a ``TorchDispatchMode``) sees each
operation's outputs, counts the bytes of each new storage while it lives (a weak reference
frees it when the last tensor on it goes, as the caching allocator would see it returned), and
keeps the peak with its breakdown and the stage it happened in.

What it models: every storage the computation creates at its real size and dtype, held exactly
as long as Python and autograd hold it (saved activations of a backward included); attention
through ``scaled_dot_product_attention`` as its fused kernels allocate it (outputs and the
log-sum-exp, never an L×L matrix) unless the code itself builds the matrix. What it cannot know:
the caching allocator's rounding and fragmentation, cuDNN/cuBLAS workspaces and the CUDA
context (~0.3–0.5 GB), all reported beside the estimate.

Values on meta tensors do not exist: a Python number read from one (``.item()``, ``float(t)``)
is a placeholder 0 and a copy to another device stays on meta. Control flow that depends on
values may therefore take another branch than a real run would; shapes never depend on values
in the methods profiled here (steps, guidance and replays are fixed by the schedule).
"""
from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map_only

_current: MemoryEstimator | None = None

CANNOT_KNOW = ("the caching allocator's block rounding and fragmentation (measured reserved memory is "
               "typically 5-20 % above allocated)", "cuDNN/cuBLAS workspaces", "the CUDA context (~0.3-0.5 GB, "
               "outside max_memory_allocated)")


def storage_bytes(t: torch.Tensor) -> int:
    return t.untyped_storage().nbytes()


@dataclass
class Peak:
    bytes: int = 0
    stage: str = "start"
    weights: int = 0                       # parameters and buffers registered before the run
    held: int = 0                          # tensors made in an earlier stage and still alive (caches, latents)
    working: int = 0                       # tensors made in the peak's own stage (activations, temporaries)


@dataclass
class MemoryEstimator(TorchDispatchMode):
    """Counts live storages of the tensors created under it; see the module docstring."""
    weights: int = 0                       # bytes of the parameters and buffers added
    live: int = 0
    stage: str = "start"
    peak: Peak = field(default_factory=Peak)
    _by_stage: dict[str, int] = field(default_factory=dict)
    _seen: dict[int, tuple[int, str]] = field(default_factory=dict)
    stages_seen: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    # ---- what exists before the run ----------------------------------------------------------
    def add_weights(self, modules: Iterable[torch.nn.Module]) -> int:
        """Count each module's parameters and buffers once (a shared storage once)."""
        before = self.live
        with self.in_stage("weights"):
            for module in modules:
                for t in [*module.parameters(), *module.buffers()]:
                    self._track(t)
        added = self.live - before
        self.weights += added
        return added

    # ---- dispatch --------------------------------------------------------------------------------
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        packet = func._overloadpacket
        on_meta = bool(args) and isinstance(args[0], torch.Tensor) and args[0].device.type == "meta"
        if on_meta and packet is torch.ops.aten._local_scalar_dense:
            return False if args[0].dtype == torch.bool else 0      # a placeholder number (see docstring)
        if on_meta and packet is torch.ops.aten._to_copy and kwargs.get("device") not in (None, torch.device("meta")):
            return func(*args, **{**kwargs, "device": torch.device("meta")})   # leaves the device: not counted
        out = func(*args, **kwargs)
        tree_map_only(torch.Tensor, self._track, out)
        return out

    def _track(self, t: torch.Tensor) -> None:
        # Storages are counted, not tensors: views share one; a storage's Python object lives
        # exactly as long as some tensor uses it, so its finaliser is the moment it is freed.
        storage = t.untyped_storage()
        key = id(storage)
        nbytes = storage.nbytes()
        if key in self._seen or nbytes == 0:
            return
        self._seen[key] = (nbytes, self.stage)
        self._by_stage[self.stage] = self._by_stage.get(self.stage, 0) + nbytes
        self.live += nbytes
        weakref.finalize(storage, self._free, key)
        self._update_peak()

    def _free(self, key) -> None:
        entry = self._seen.pop(key, None)
        if entry is not None:
            nbytes, stage = entry
            self.live -= nbytes
            self._by_stage[stage] -= nbytes

    def _update_peak(self) -> None:
        if self.live > self.peak.bytes:
            weights = self._by_stage.get("weights", 0)
            working = self._by_stage.get(self.stage, 0) if self.stage != "weights" else 0
            self.peak = Peak(self.live, self.stage, weights, self.live - weights - working, working)

    # ---- stages --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def in_stage(self, name: str) -> Iterator[None]:
        previous, self.stage = self.stage, name
        if name not in self.stages_seen:
            self.stages_seen.append(name)
        try:
            yield
        finally:
            self.stage = previous

    def __enter__(self):
        global _current
        _current = self
        self._fused = FusedAttention()
        self._fused.__enter__()
        return super().__enter__()

    def __exit__(self, *exc):
        global _current
        _current = None
        try:
            return super().__exit__(*exc)
        finally:
            self._fused.__exit__(*exc)


class FusedAttention(TorchFunctionMode):
    """On the meta device ``scaled_dot_product_attention`` falls back to its math form, which
    builds the L×L score matrix; on CUDA the fused kernels never do. Route it to the
    memory-efficient kernel's own op (output + log-sum-exp, its saved tensors and its backward),
    which is what a CUDA run allocates."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.nn.functional.scaled_dot_product_attention:
            q, k, v, *rest = args
            if q.device.type == "meta":
                names = ("attn_mask", "dropout_p", "is_causal", "scale")
                opts = {**dict(zip(names, rest)), **{n: kwargs[n] for n in names if n in kwargs}}
                grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
                return torch.ops.aten._scaled_dot_product_efficient_attention(
                    q, k, v, opts.get("attn_mask"), grad, opts.get("dropout_p", 0.0), opts.get("is_causal", False),
                    scale=opts.get("scale"))[0]
        return func(*args, **kwargs)


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Label the work inside (e.g. "guidance backward") for a running estimate; free otherwise."""
    if _current is None:
        yield
    else:
        with _current.in_stage(name):
            yield
