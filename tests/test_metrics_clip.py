"""clip_text / temporal_consistency: tokenisation that keeps EOT, offline unavailability with
the fix command, and the open_clip loading path on a tiny locally made model (plumbing only)."""
import json
import time

import pytest
import torch
from metric_helpers import clip_of, import_ok, stage

from motiongrid.bench import weights
from motiongrid.bench.video import Video
from motiongrid.datasets.shapes import ShapesOptions, generate_clips
from motiongrid.metrics import clip as clip_metrics
from motiongrid.metrics.clip import ClipText, PromptTruncated, TemporalConsistency, tokenize_keep_eot


@pytest.fixture(scope="module")
def tokenizer():
    import open_clip

    return open_clip.get_tokenizer("ViT-B-32")


def test_short_prompt_tokenises_like_open_clip(tokenizer):
    ours, dropped = tokenize_keep_eot(tokenizer, ["a red square moving right"])
    assert dropped == [0] and torch.equal(ours, tokenizer(["a red square moving right"]))


def test_long_prompt_keeps_eot_and_both_ends(tokenizer):
    words = [f"w{i}" for i in range(120)]
    prompt = "start " + " ".join(words) + " finish"
    tokens, dropped = tokenize_keep_eot(tokenizer, [prompt])
    ids = tokens[0].tolist()
    assert len(ids) == 77 and dropped[0] > 0
    assert ids[0] == tokenizer.sot_token_id and ids[-1] == tokenizer.eot_token_id
    assert ids.count(tokenizer.eot_token_id) == 1                  # pooled at argmax = the EOT
    full = tokenizer.encode(prompt)
    assert ids[1:4] == full[:3] and ids[-4:-1] == full[-3:]          # head and tail survive
    assert tokenizer.decode(ids[-4:-1]).strip().endswith("finish")


def test_default_weights_missing_fails_fast_with_fix(isolated, monkeypatch):
    import huggingface_hub

    def hub(*a, **k):
        raise AssertionError("the hub was contacted")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hub)
    start = time.perf_counter()
    for cls in (ClipText, TemporalConsistency):
        reason = cls().available()
        assert "motiongrid weights fetch openclip-vit-b-32-openai" in reason and "weights import DIR" in reason
    assert time.perf_counter() - start < 2.0
    m = ClipText()
    pre = m.preprocessing()
    # a file path carries no tag, so the tag's settings are applied explicitly
    assert pre["quick_gelu"] is True and pre["mean"] == pytest.approx((0.48145466, 0.4578275, 0.40821073))
    reason = ClipText(pretrained="laion2b_s34b_b79k").available()
    assert "no weights entry" in reason and "weights=" in reason


TINY = {"embed_dim": 32,
        "vision_cfg": {"image_size": 224, "layers": 1, "width": 64, "patch_size": 32, "head_width": 32},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}


def test_open_clip_path_runs_on_imported_tiny_model(isolated, monkeypatch):
    import open_clip
    from safetensors.torch import save_file

    monkeypatch.setattr(clip_metrics, "_MODELS", {})
    cfg = isolated / "tiny-test-clip.json"
    cfg.write_text(json.dumps(TINY))
    open_clip.add_model_config(cfg)
    weights.register(weights.WeightFile(
        name="test-tiny-clip", description="tiny random open_clip model (test)", url="file:///nowhere",
        target=lambda: weights.weights_home() / "open_clip" / "tiny" / "open_clip_model.safetensors"))
    torch.manual_seed(0)
    model = open_clip.create_model("tiny-test-clip")
    transfer = isolated / "transfer"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(stage(transfer, "test-tiny-clip")))
    import_ok(transfer, "test-tiny-clip")

    opts = dict(model="tiny-test-clip", pretrained="none", weights="test-tiny-clip")
    text, tc = ClipText(**opts), TemporalConsistency(**opts)
    assert text.available() is None and tc.available() is None
    clip = generate_clips(ShapesOptions(count=1, size=48, frames=4))[0]
    value = text.score(Video(clip.frames), clip)
    assert 0.0 <= value <= 100.0                                   # plumbing only
    assert torch.equal(text.model.visual.conv1.weight, model.visual.conv1.weight)   # our file was loaded
    still = clip.frames[:1].repeat(4, 1, 1, 1)
    assert tc.score(Video(still), clip) == pytest.approx(1.0, abs=1e-5)
    assert tc.model is text.model                                  # one model shared by both metrics
    with pytest.warns(PromptTruncated, match="middle"):
        text.score(Video(clip.frames), clip_of(clip.frames, prompt="word " * 200))
    with pytest.raises(ValueError, match="needs >= 2"):
        tc.score(Video(clip.frames[:1]), clip)
