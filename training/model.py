"""CodeGen with fused attention, weight-for-weight the model of ``transformers``' CodeGen classes.

Stock ``CodeGenForCausalLM`` runs attention eagerly in fp32 (a [b, heads, n, n] matrix per
layer), which bounds batch size and speed. :class:`SdpaCodeGenForCausalLM` swaps only the
attention arithmetic for ``torch.nn.functional.scaled_dot_product_attention`` (flash / memory-
efficient kernels on GPU) and keeps everything else: the ``qkv_proj`` layout with CodeGen's
``mp_num=4`` split, rotary embeddings on the first ``rotary_dim`` channels, parameter names. A
checkpoint it saves therefore loads in stock ``CodeGenForCausalLM`` (and back), and both give
the same logits.
"""

from __future__ import annotations

import json
import os

import torch
import torch.nn.functional as F
from transformers import CodeGenConfig, CodeGenForCausalLM
from transformers.models.codegen import modeling_codegen as mc
from transformers.utils import logging as hf_logging

hf_logging.disable_progress_bar()  # checkpoints are written every few steps; no bars in the logs

MP_NUM = 4  # CodeGen's qkv_proj holds 4 model-parallel groups of (q, v, k); fixed by its checkpoints


class SdpaCodeGenAttention(mc.CodeGenAttention):
    """CodeGen attention through SDPA: same projections, split and rotary as the stock class."""

    def forward(self, hidden_states, layer_past=None, attention_mask=None, position_ids=None,
                use_cache=False, output_attentions=False):
        qkv = self.qkv_proj(hidden_states)
        qkv_split = qkv.reshape(qkv.shape[:-1] + (MP_NUM, -1))
        local_dim = self.head_dim * self.num_attention_heads // MP_NUM
        query, value, key = torch.split(qkv_split, local_dim, dim=-1)
        query = self._split_heads(query, self.num_attention_heads, self.head_dim, mp_num=MP_NUM)
        key = self._split_heads(key, self.num_attention_heads, self.head_dim, mp_num=MP_NUM)
        value = self._split_heads(value, self.num_attention_heads, self.head_dim, mp_num=MP_NUM)
        value = value.permute(0, 2, 1, 3)

        embed_positions = self.embed_positions
        if embed_positions.device != position_ids.device:
            embed_positions = embed_positions.to(position_ids.device)
            self.embed_positions = embed_positions
        sincos = embed_positions[position_ids]
        sin, cos = torch.split(sincos, sincos.shape[-1] // 2, dim=-1)
        if self.rotary_dim is not None:
            r = self.rotary_dim
            key = torch.cat([mc.apply_rotary_pos_emb(key[..., :r], sin, cos), key[..., r:]], dim=-1)
            query = torch.cat([mc.apply_rotary_pos_emb(query[..., :r], sin, cos), query[..., r:]], dim=-1)
        else:
            key = mc.apply_rotary_pos_emb(key, sin, cos)
            query = mc.apply_rotary_pos_emb(query, sin, cos)
        key = key.permute(0, 2, 1, 3).to(value.dtype)
        query = query.permute(0, 2, 1, 3).to(value.dtype)
        if layer_past is not None:
            key, value = layer_past.update(key, value, self.layer_idx)

        q_len, kv_len = query.shape[-2], key.shape[-2]
        mask, causal = attention_mask, False
        if mask is None:
            if q_len == kv_len:
                causal = q_len > 1
            elif q_len > 1:  # a chunk after cached tokens: each query sees the past and its prefix
                mask = torch.ones(q_len, kv_len, dtype=torch.bool, device=query.device).tril(kv_len - q_len)
        elif mask.dtype != torch.bool:
            mask = mask.to(query.dtype)
        out = F.scaled_dot_product_attention(
            query, key, value, attn_mask=mask, is_causal=causal,
            dropout_p=self.attn_dropout.p if self.training else 0.0)
        out = self._merge_heads(out, self.num_attention_heads, self.head_dim)
        out = self.resid_dropout(self.out_proj(out))
        return out, None


class SdpaCodeGenForCausalLM(CodeGenForCausalLM):
    """``CodeGenForCausalLM`` whose blocks attend through SDPA; same parameters, same checkpoints."""

    _supports_sdpa = True

    def __init__(self, config):
        config._attn_implementation_internal = "eager"  # stock CodeGen accepts only "eager" here
        super().__init__(config)
        # From now on the model builds SDPA masks: booleans, or None for plain causal attention.
        self.config._attn_implementation_internal = "sdpa"
        for index, block in enumerate(self.transformer.h):
            fused = SdpaCodeGenAttention(config, layer_idx=index)
            fused.load_state_dict(block.attn.state_dict(), strict=False)
            fused.embed_positions = block.attn.embed_positions
            block.attn = fused

    def _apply(self, fn, *args, **kwargs):
        """Move the rotary tables with the weights (stock CodeGen keeps them as plain attributes and
        moves them inside forward, a state change that torch.compile would trace at every layer)."""
        out = super()._apply(fn, *args, **kwargs)
        device = self.lm_head.weight.device
        for block in self.transformer.h:
            if block.attn.embed_positions.device != device:
                block.attn.embed_positions = block.attn.embed_positions.to(device)
        return out

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Save as a stock CodeGen checkpoint: config.json names ``CodeGenForCausalLM``."""
        out = super().save_pretrained(save_directory, *args, **kwargs)
        path = os.path.join(save_directory, "config.json")
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
        config["architectures"] = ["CodeGenForCausalLM"]
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(config, handle, indent=2, sort_keys=True)
            handle.write("\n")
        return out


def model_config(model: dict, vocab_size: int, eos_token_id: int, pad_token_id: int = 0) -> CodeGenConfig:
    """A CodeGenConfig from a config file's ``model`` section and the dataset's tokenizer."""
    known = {"n_layer", "n_head", "n_embd", "n_ctx", "n_positions", "rotary_dim", "n_inner",
             "activation_function", "resid_pdrop", "embd_pdrop", "attn_pdrop", "layer_norm_epsilon",
             "initializer_range", "tie_word_embeddings"}
    unknown = set(model) - known
    if unknown:
        raise ValueError(f"unknown model keys {sorted(unknown)}; known: {sorted(known)}")
    if model["n_embd"] % model["n_head"] or model["n_head"] % MP_NUM:
        raise ValueError("n_embd must divide by n_head, and n_head by 4 (CodeGen's qkv split)")
    values = dict(model)
    values.setdefault("n_ctx", values.get("n_positions", 2048))
    return CodeGenConfig(vocab_size=vocab_size, bos_token_id=eos_token_id, eos_token_id=eos_token_id,
                         pad_token_id=pad_token_id, **values)


def build(config: CodeGenConfig, seed: int) -> SdpaCodeGenForCausalLM:
    """A freshly initialised model; the weights depend on ``seed`` only."""
    torch.manual_seed(seed)
    return SdpaCodeGenForCausalLM(config)


def load(path: str, dtype=torch.float32) -> SdpaCodeGenForCausalLM:
    """A checkpoint folder (ours or any CodeGen one) as the SDPA model."""
    return SdpaCodeGenForCausalLM.from_pretrained(path, dtype=dtype)


def read_config_file(path: str) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
