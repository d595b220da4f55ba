"""Camera mode (``camera = true``), as the released attention processor does it: from released
step 20 on, every spatial SELF-attention of the denoiser's up blocks in the editing branch also
attends to the reconstruction branch's keys and values of the same step and layer — the
reconstruction's taken outside the source subject (1 − S), the edit's own kept inside the target
mask T — concatenated along the sequence (extended attention). It carries the source's
background, moving camera included, into the edit. Off (the default), nothing changes.

Implemented as a diffusers attention processor on ``up_blocks.*.attentions.*.transformer_blocks
.*.attn1`` of the denoising UNet only; the reconstruction pass records (mode "save"), the
editing branch's CFG / conditional passes read (mode "inject"); inversion and estimator passes
run with the mode off, as released.
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

CAMERA_FROM_RELEASED_STEP = 20
_UP_SELF_ATTENTION = re.compile(r"^up_blocks\.\d+\.attentions\.\d+\.transformer_blocks\.\d+\.attn1\.processor$")


@dataclass
class CameraState:
    source_masks: torch.Tensor                 # (F, H, W) bool
    target_masks: torch.Tensor
    park: bool = True                          # keep K/V on the CPU between save and inject (as released)
    mode: str = "off"                          # off | save | inject
    step: int = -1
    buffers: dict = field(default_factory=dict)  # (layer, step) -> (key, value)

    @contextmanager
    def use(self, mode: str, step: int):
        self.mode, self.step = mode, step
        try:
            yield
        finally:
            self.mode, self.step = "off", -1


def _mask_tokens(masks: torch.Tensor, tokens: int, like: torch.Tensor) -> torch.Tensor:
    """(F, H, W) bool -> (F, tokens, 1) float at the attention's square grid (nearest)."""
    side = int(round(tokens ** 0.5))
    m = F.interpolate(masks[:, None].float(), size=(side, side), mode="nearest")
    return m.flatten(1)[..., None].to(like.device, like.dtype)


class CameraAttnProcessor:
    def __init__(self, state: CameraState, layer: str):
        self.state, self.layer = state, layer

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        if encoder_hidden_states is not None or attention_mask is not None or hidden_states.ndim != 3:
            raise ValueError(f"camera mode: {self.layer} is not a plain spatial self-attention")
        st = self.state
        residual = hidden_states
        b, n, _ = hidden_states.shape
        query, key, value = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
        if st.mode == "save":
            kv = (key.detach(), value.detach())
            st.buffers[(self.layer, st.step)] = tuple(x.cpu() for x in kv) if st.park else kv
        elif st.mode == "inject" and (self.layer, st.step) in st.buffers:
            k_ref, v_ref = (x.to(key.device) for x in st.buffers[(self.layer, st.step)])
            frames = k_ref.shape[0]
            outside_s = 1 - _mask_tokens(st.source_masks, n, key)
            inside_t = _mask_tokens(st.target_masks, n, key).repeat(b // frames, 1, 1)
            key = torch.cat([key * inside_t, (k_ref * outside_s).repeat(b // frames, 1, 1)], dim=1)
            value = torch.cat([value * inside_t, (v_ref * outside_s).repeat(b // frames, 1, 1)], dim=1)
        head = key.shape[-1] // attn.heads
        q, k, v = (x.view(b, -1, attn.heads, head).transpose(1, 2) for x in (query, key, value))
        out = F.scaled_dot_product_attention(q, k, v, scale=attn.scale)
        out = attn.to_out[1](attn.to_out[0](out.transpose(1, 2).reshape(b, -1, attn.heads * head)))
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


@contextmanager
def camera_mode(unet, state: CameraState):
    """Install the camera processors on ``unet``'s up-block spatial self-attentions; restore
    the original processors on exit."""
    original = dict(unet.attn_processors)
    targets = [name for name in original if _UP_SELF_ATTENTION.match(name)]
    if not targets:
        raise ValueError("camera mode: the UNet has no spatial self-attention in its up blocks")
    unet.set_attn_processor({name: CameraAttnProcessor(state, name) if name in targets else proc
                             for name, proc in original.items()})
    try:
        yield targets
    finally:
        unet.set_attn_processor(original)
