"""Sampling completions from a Sluice checkpoint (the SDPA CodeGen and the dataset's tokenizer).

Randomness comes from ``seed`` and a stable id of the prompt, so the same checkpoint, prompt and
flags give the same samples whatever else runs in the batch or in which order.
"""

from __future__ import annotations

import hashlib
import os

import torch

from schemas.tokenizer import Tokenizer
from training import model as model_lib

TOKENIZER = "tokenizer.model"


class Generator:
    def __init__(self, checkpoint: str, device: str = "auto"):
        self.device = torch.device("cuda" if device == "auto" and torch.cuda.is_available()
                                   else ("cpu" if device == "auto" else device))
        self.model = model_lib.load(checkpoint).to(self.device).eval()
        self.tokenizer = Tokenizer.from_file(os.path.join(checkpoint, TOKENIZER))
        self.max_positions = self.model.config.n_positions

    def encode_prompt(self, prompt: str) -> list:
        """End-of-text first: in the packed streams a document starts after one."""
        return [self.tokenizer.eot_id] + self.tokenizer.encode(prompt)

    @torch.no_grad()
    def sample(self, prompt: str, n: int, max_new_tokens: int, *, temperature: float = 0.2,
               top_p: float = 0.95, seed: int = 0, key: str = "") -> list:
        """``n`` completions (text) of ``prompt``; greedy when ``temperature`` is 0."""
        ids = self.encode_prompt(prompt)
        keep = max(1, self.max_positions - max_new_tokens)
        ids = ids[-keep:]  # the prompt's end matters most; the model cannot see further back
        stable = int.from_bytes(hashlib.sha256(f"{seed}:{key or prompt}".encode()).digest()[:8], "little")
        torch.manual_seed(stable)
        x = torch.tensor([ids], device=self.device)
        kwargs = dict(max_new_tokens=max_new_tokens, num_return_sequences=n,
                      pad_token_id=self.tokenizer.pad_id, eos_token_id=self.tokenizer.eot_id,
                      attention_mask=torch.ones_like(x))
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_p=top_p)
        else:
            kwargs.update(do_sample=False)
            kwargs["num_return_sequences"] = 1
        out = self.model.generate(x, **kwargs)
        texts = [self.tokenizer.decode([t for t in row[len(ids):].tolist() if t != self.tokenizer.pad_id])
                 for row in out]
        return texts if temperature > 0 else texts * n

    @torch.no_grad()
    def token_nll(self, context: str, text: str) -> tuple:
        """Summed negative log-likelihood of ``text``'s tokens after ``context``, and their count."""
        ctx = self.encode_prompt(context) if context else [self.tokenizer.eot_id]
        tgt = self.tokenizer.encode(text)
        ids = (ctx + tgt)[-self.max_positions:]
        n = min(len(tgt), len(ids) - 1)
        x = torch.tensor([ids], device=self.device)
        logits = self.model(x, use_cache=False).logits[0, :-1].float()
        logp = torch.log_softmax(logits, dim=-1)
        targets = x[0, 1:]
        picked = logp.gather(1, targets[:, None])[:, 0]
        return float(-picked[-n:].sum()) if n else 0.0, n
