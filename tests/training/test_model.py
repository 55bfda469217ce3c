"""The SDPA CodeGen: same logits as transformers' eager CodeGen, same checkpoints both ways."""

from __future__ import annotations

import pytest

pytest.importorskip("torch", reason="the training jobs need the 'train' extra (torch)")
pytest.importorskip("transformers", reason="the training jobs need the 'train' extra (transformers)")

import json

import torch
from transformers import CodeGenForCausalLM

from training import model as model_lib
from training.step import segment_inputs

TINY = {"n_layer": 2, "n_head": 8, "n_embd": 64, "rotary_dim": 4, "n_positions": 64}


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The SDPA model and stock CodeGenForCausalLM loaded from its checkpoint."""
    fused = model_lib.build(model_lib.model_config(TINY, 300, eos_token_id=2), seed=0).eval()
    folder = tmp_path_factory.mktemp("ckpt")
    fused.save_pretrained(folder)
    stock = CodeGenForCausalLM.from_pretrained(folder).eval()
    return fused, stock, folder


def test_stock_class_loads_it_with_eager_attention(pair):
    fused, stock, folder = pair
    assert type(stock.transformer.h[0].attn).__name__ == "CodeGenAttention"
    assert type(fused.transformer.h[0].attn).__name__ == "SdpaCodeGenAttention"
    assert json.loads((folder / "config.json").read_text())["architectures"] == ["CodeGenForCausalLM"]
    assert fused.state_dict().keys() == stock.state_dict().keys()


def test_logits_equal_stock_eager(pair):
    fused, stock, _ = pair
    x = torch.randint(0, 300, (3, 50), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = stock(x).logits, fused(x).logits
    assert a.abs().max() > 0.1  # not a degenerate comparison
    torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)


def test_logits_equal_with_left_padding(pair):
    fused, stock, _ = pair
    x = torch.randint(0, 300, (2, 30), generator=torch.Generator().manual_seed(2))
    mask = torch.ones_like(x)
    mask[1, :7] = 0
    with torch.no_grad():
        a, b = stock(x, attention_mask=mask).logits, fused(x, attention_mask=mask).logits
    torch.testing.assert_close(b[0], a[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(b[1, 7:], a[1, 7:], atol=1e-5, rtol=1e-5)


def test_greedy_generation_with_cache_matches_stock(pair):
    fused, stock, _ = pair
    x = torch.randint(3, 300, (1, 12), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        a = stock.generate(x, max_new_tokens=10, do_sample=False, pad_token_id=0)
        b = fused.generate(x, max_new_tokens=10, do_sample=False, pad_token_id=0)
    assert a.tolist() == b.tolist()


def test_round_trip_through_both_classes(pair, tmp_path):
    fused, stock, _ = pair
    stock.save_pretrained(tmp_path)
    back = model_lib.load(str(tmp_path)).eval()
    for (name, p), q in zip(fused.state_dict().items(), back.state_dict().values()):
        assert torch.equal(p, q), name
    x = torch.randint(0, 300, (1, 20))
    with torch.no_grad():
        assert torch.equal(back(x).logits, fused(x).logits)


def test_packed_segments_do_not_attend_across(pair):
    fused, _, _ = pair
    x = torch.randint(3, 300, (1, 24), generator=torch.Generator().manual_seed(4))
    seg = torch.tensor([[1] * 10 + [2] * 11 + [0] * 3])
    pos, mask = segment_inputs(seg)
    assert pos[0, :12].tolist() == list(range(10)) + [0, 1]
    with torch.no_grad():
        packed = fused.transformer(input_ids=x, position_ids=pos, attention_mask=mask, use_cache=False).last_hidden_state
        one = fused.transformer(input_ids=x[:, :10], use_cache=False).last_hidden_state
        two = fused.transformer(input_ids=x[:, 10:21], use_cache=False).last_hidden_state
    torch.testing.assert_close(packed[:, :10], one, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(packed[:, 10:21], two, atol=1e-5, rtol=1e-5)
    assert torch.isfinite(packed).all()


def test_configs_up_to_codegen_350m():
    import os

    for name in sorted(os.listdir(model_lib.CONFIG_DIR)):
        config = model_lib.read_config_file(os.path.join(model_lib.CONFIG_DIR, name))
        model_lib.model_config(config["model"], 51200, eos_token_id=2)
    big = model_lib.read_config_file(os.path.join(model_lib.CONFIG_DIR, "mono.json"))["model"]
    with torch.device("meta"):
        model = CodeGenForCausalLM(model_lib.model_config(big, 51200, eos_token_id=2))
    params = sum(p.numel() for p in model.parameters())
    assert 350e6 < params < 360e6  # CodeGen-350M-mono: 356.7M parameters with its 51,200 vocabulary


def test_bad_model_config_is_refused():
    with pytest.raises(ValueError, match="unknown model keys"):
        model_lib.model_config({**TINY, "n_layers": 3}, 300, eos_token_id=2)
    with pytest.raises(ValueError, match="n_head by 4"):
        model_lib.model_config({**TINY, "n_head": 2}, 300, eos_token_id=2)
