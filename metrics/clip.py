"""CLIP-based metrics with open_clip: ``clip_text`` (text alignment) and ``temporal_consistency``.

Model: open_clip ``ViT-B-32`` with OpenAI weights by default (options ``model``,
``pretrained``; ``weights`` names a weights entry or a file). Weights are always handed to
open_clip as a local file path — open_clip would otherwise go to the Hugging Face hub (and,
without ``HF_HUB_OFFLINE=1``, retry for ~30 s per file). Because a file path carries no tag,
the tag's settings are applied explicitly: QuickGELU (OpenAI weights were trained with it;
without it the numbers are silently wrong) and the tag's image mean/std, interpolation and
resize mode.

Frames: ``to_uint8_hwc`` -> PIL -> open_clip's own validation transform (resize shortest side
to 224 bicubic, centre crop, normalise). Embeddings are L2-normalised.

- ``clip_text`` = mean over frames of 100 * max(cos(image, prompt), 0) (CLIPScore as in
  torchmetrics). Prompts longer than the 77-token context keep start and end-of-text tokens and
  lose the MIDDLE of their tokens (the pooled text feature is read at the EOT token; dropping it
  collapses the score — torchmetrics issue #2883), with a warning.
- ``temporal_consistency`` = mean over t of cos(image_t, image_{t+1}) (in [-1, 1], not x100),
  as in MotionClone's and EfficientMT's tables. Needs no reference.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch

from motiongrid.bench import weights
from motiongrid.bench.clip import Clip
from motiongrid.bench.registry import metrics
from motiongrid.bench.video import Video, to_uint8_hwc
from motiongrid.metrics._common import BaseMetric
from motiongrid.metrics.options import ClipOptions

# (open_clip model, pretrained tag) -> weights entry holding that tag's file
KNOWN_WEIGHTS = {("ViT-B-32", "openai"): "openclip-vit-b-32-openai"}


class PromptTruncated(UserWarning):
    pass


_MODELS: dict[tuple, tuple] = {}  # one loaded model shared by both metrics


def tokenize_keep_eot(tokenizer, texts: list[str], context_length: int | None = None) -> tuple[torch.Tensor, list[int]]:
    """Tokenise like open_clip's SimpleTokenizer, but an over-long prompt loses tokens from the
    middle: [SOT] + head + tail + [EOT]. Returns the token tensor and, per text, how many
    tokens were dropped."""
    ctx = context_length or tokenizer.context_length
    budget = ctx - 2
    result = torch.zeros(len(texts), ctx, dtype=torch.long)
    dropped = []
    for i, text in enumerate(texts):
        ids = tokenizer.encode(text)
        cut = max(0, len(ids) - budget)
        if cut:
            head = (budget + 1) // 2
            ids = ids[:head] + ids[len(ids) - (budget - head):]
        tokens = [tokenizer.sot_token_id] + ids + [tokenizer.eot_token_id]
        result[i, :len(tokens)] = torch.tensor(tokens)
        dropped.append(cut)
    return result, dropped


class _ClipMetric(BaseMetric):
    Options = ClipOptions


    # -- which file ---------------------------------------------------------------------
    def _weight_source(self) -> tuple[str | None, Path | None]:
        """(weights entry name or None, explicit file or None)."""
        w = self.options["weights"]
        if w:
            try:
                weights.get(w)
                return w, None
            except KeyError:
                return None, Path(w).expanduser()
        entry = KNOWN_WEIGHTS.get((self.options["model"], self.options["pretrained"]))
        if entry:
            return entry, None
        if Path(self.options["pretrained"]).expanduser().suffix:  # looks like a file path
            return None, Path(self.options["pretrained"]).expanduser()
        return None, None

    def available(self) -> str | None:
        try:
            import open_clip  # noqa: F401
        except ImportError:
            return f"{self.name}: open_clip is not installed. Fix: `pip install open_clip_torch`"
        entry, path = self._weight_source()
        if entry:
            reason = weights.available(entry)
            return f"{self.name}: {reason}" if reason else None
        if path is not None:
            return None if path.is_file() else f"{self.name}: weights file {path} not found"
        return (f"{self.name}: no weights entry for open_clip {self.options['model']!r} pretrained "
                f"{self.options['pretrained']!r}; pass weights=<entry name or /path/to/file> "
                f"(motiongrid never lets open_clip download while scoring)")

    def _tag_cfg(self) -> dict:
        from open_clip.pretrained import get_pretrained_cfg

        return get_pretrained_cfg(self.options["model"], self.options["pretrained"]) or {}

    def _quick_gelu(self) -> bool:
        if self.options["quick_gelu"] is not None:
            return bool(self.options["quick_gelu"])
        return bool(self._tag_cfg().get("quick_gelu", False))

    def weight_path(self) -> Path:
        entry, path = self._weight_source()
        return weights.require(entry) if entry else path

    def load(self) -> None:
        import open_clip

        path = self.weight_path()
        key = (self.options["model"], str(path), self._quick_gelu(), str(self.device))
        if key not in _MODELS:
            cfg = self._tag_cfg()
            model, _, preprocess = open_clip.create_model_and_transforms(
                self.options["model"], pretrained=str(path), force_quick_gelu=self._quick_gelu(),
                device=self.device, image_mean=cfg.get("mean"), image_std=cfg.get("std"),
                image_interpolation=cfg.get("interpolation"), image_resize_mode=cfg.get("resize_mode"))
            model.eval()
            _MODELS[key] = (model, preprocess, open_clip.get_tokenizer(self.options["model"]))
        self.model, self.preprocess, self.tokenizer = _MODELS[key]

    def preprocessing(self) -> dict:
        entry, path = self._weight_source()
        return {"library": "open_clip", "model": self.options["model"], "pretrained": self.options["pretrained"],
                "weights": entry or str(path), "quick_gelu": self._quick_gelu(),
                "frames": "uint8 via to_uint8_hwc -> PIL -> open_clip val transform",
                **({k: _json(self._tag_cfg().get(k)) for k in ("mean", "std", "interpolation", "resize_mode")})}

    @torch.no_grad()
    def image_embeddings(self, frames: torch.Tensor) -> torch.Tensor:
        from PIL import Image

        self.ensure_prepared()
        images = to_uint8_hwc(frames)
        out = []
        for sl in self.batches(len(images)):
            x = torch.stack([self.preprocess(Image.fromarray(img)) for img in images[sl]]).to(self.device)
            out.append(torch.nn.functional.normalize(self.model.encode_image(x).float(), dim=-1).cpu())
        return torch.cat(out)

    @torch.no_grad()
    def text_embedding(self, prompt: str) -> torch.Tensor:
        self.ensure_prepared()
        if all(hasattr(self.tokenizer, a) for a in ("encode", "sot_token_id", "eot_token_id", "context_length")):
            tokens, dropped = tokenize_keep_eot(self.tokenizer, [prompt])
            if dropped[0]:
                warnings.warn(f"{self.name}: prompt has {dropped[0]} tokens more than the "
                              f"{self.tokenizer.context_length}-token context; dropped them from the middle, "
                              f"kept the start and end-of-text tokens: {prompt[:60]!r}…", PromptTruncated, stacklevel=2)
        else:  # a tokenizer we cannot cut ourselves: its own truncation applies
            tokens = self.tokenizer([prompt])
        emb = self.model.encode_text(tokens.to(self.device)).float()
        return torch.nn.functional.normalize(emb, dim=-1).cpu()[0]


@metrics.register("clip_text")
class ClipText(_ClipMetric):
    description = "CLIP text alignment: mean over frames of 100*max(cos(frame, prompt), 0) (open_clip)"
    higher_is_better = True
    needs = frozenset({"prompt"})

    def preprocessing(self) -> dict:
        return {**super().preprocessing(), "score": "100*max(cos,0), mean over frames",
                "long_prompts": "middle tokens dropped, SOT/EOT kept, warning"}

    def score(self, generated: Video, clip: Clip) -> float:
        if not clip.prompt:
            raise ValueError(f"clip_text: clip {clip.id!r} has no prompt")
        img = self.image_embeddings(generated.frames)
        txt = self.text_embedding(clip.prompt)
        return float((100.0 * (img @ txt).clamp(min=0)).double().mean())


@metrics.register("temporal_consistency")
class TemporalConsistency(_ClipMetric):
    description = "mean cosine similarity of CLIP image embeddings of consecutive frames (open_clip)"
    higher_is_better = True
    needs = frozenset()

    def preprocessing(self) -> dict:
        return {**super().preprocessing(), "score": "mean_t cos(e_t, e_t+1)"}

    def score(self, generated: Video, clip: Clip) -> float:
        if generated.num_frames < 2:
            raise ValueError(f"temporal_consistency: generated video for clip {clip.id!r} has 1 frame; needs >= 2")
        emb = self.image_embeddings(generated.frames)
        return float((emb[:-1] * emb[1:]).sum(-1).double().mean())


def _json(value):
    """open_clip's config holds tuples; recorded preprocessing is JSON (lists)."""
    return list(value) if isinstance(value, tuple) else value
