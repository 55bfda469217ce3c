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
        ((logp, n),) = self.continuation_logprobs([(ctx, self.tokenizer.encode(text))])
        return -logp if n else 0.0, n

    @torch.no_grad()
    def continuation_logprobs(self, pairs, batch_size: int = 16) -> list:
        """``(sum of log-probabilities, count)`` of each ``(context ids, continuation ids)`` pair's
        continuation tokens given its context, as a packed segment presents them: positions from 0,
        attention causal within the pair only. Pairs run ``batch_size`` rows a forward pass, right-
        padded (causal attention: a row's tokens never see the padding after them), and the
        vocabulary projection runs only at the positions scored. A pair longer than the model's
        positions keeps its last ``max_positions`` tokens (its context's start goes first)."""
        rows = []
        for context, continuation in pairs:
            ids = list(context) + list(continuation)
            cut = max(0, len(ids) - self.max_positions)
            ids = ids[cut:]
            rows.append((ids, min(len(continuation), len(ids) - 1)))
        out = []
        for start in range(0, len(rows), batch_size):
            out.extend(self._scored_rows(rows[start:start + batch_size]))
        return out

    def _scored_rows(self, rows) -> list:
        width = max(len(ids) for ids, _ in rows)
        x = torch.full((len(rows), width), self.tokenizer.pad_id, dtype=torch.long)
        for i, (ids, _) in enumerate(rows):
            x[i, :len(ids)] = torch.tensor(ids)
        x = x.to(self.device)
        hidden = self.model.transformer(input_ids=x, use_cache=False).last_hidden_state
        row_index, positions = [], []
        for i, (ids, n) in enumerate(rows):
            row_index += [i] * n
            positions += range(len(ids) - 1 - n, len(ids) - 1)  # each predicts the token after it
        if not positions:
            return [(0.0, 0)] * len(rows)
        row_t = torch.tensor(row_index, device=self.device)
        pos_t = torch.tensor(positions, device=self.device)
        logits = self.model.lm_head(hidden[row_t, pos_t]).float()
        picked = torch.log_softmax(logits, dim=-1).gather(1, x[row_t, pos_t + 1][:, None])[:, 0]
        sums = torch.zeros(len(rows), dtype=torch.float64, device=self.device)
        sums.index_add_(0, row_t, picked.double())
        return [(float(sums[i]), n) for i, (_, n) in enumerate(rows)]

    @torch.no_grad()
    def greedy(self, prompts, max_new_tokens: int, batch_size: int = 16) -> list:
        """Greedy continuations (token ids, end-of-text and what follows removed) of each prompt's
        token ids, presented as a packed segment (positions from 0); ``batch_size`` prompts a
        ``generate`` call, left-padded with an attention mask."""
        out = []
        eot, pad = self.tokenizer.eot_id, self.tokenizer.pad_id
        for start in range(0, len(prompts), batch_size):
            chunk = [list(p) for p in prompts[start:start + batch_size]]
            width = max(len(p) for p in chunk)
            x = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for i, ids in enumerate(chunk):
                x[i, width - len(ids):] = torch.tensor(ids)
                mask[i, width - len(ids):] = 1
            generated = self.model.generate(x.to(self.device), attention_mask=mask.to(self.device),
                                            max_new_tokens=max_new_tokens, do_sample=False,
                                            pad_token_id=pad, eos_token_id=eot)
            for row in generated[:, width:].tolist():
                out.append(row[:row.index(eot)] if eot in row else row)
        return out
