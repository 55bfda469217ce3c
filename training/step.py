"""One optimizer step of a CodeGen stage, apart from any run: packed batches to model inputs, the
loss over trained targets, gradient accumulation over batches and data-parallel ranks, and the
AdamW optimizer with its warmup + cosine schedule. ``training.train`` runs it; bench/train_throughput.py
times it on its own.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F


# Batches to model inputs ----------------------------------------------------------------------

def segment_inputs(segment_ids: torch.Tensor):
    """Position ids restarting at each packed example and a block-diagonal causal mask
    ([b, 1, n, n] booleans, True = may attend), so packed examples never see each other.
    Padding (segment 0) attends to itself only, which keeps its softmax defined."""
    b, n = segment_ids.shape
    idx = torch.arange(n, device=segment_ids.device)
    starts = torch.ones_like(segment_ids, dtype=torch.bool)
    starts[:, 1:] = segment_ids[:, 1:] != segment_ids[:, :-1]
    start_pos = torch.where(starts, idx.expand(b, n), torch.zeros_like(segment_ids))
    position_ids = idx - torch.cummax(start_pos, dim=1).values
    same = segment_ids[:, :, None] == segment_ids[:, None, :]
    causal = torch.ones(n, n, dtype=torch.bool, device=segment_ids.device).tril()
    mask = same & causal & ((segment_ids[:, :, None] != 0) | torch.eye(n, dtype=torch.bool, device=segment_ids.device))
    return position_ids, mask[:, None]


def target_weights(batch: dict) -> torch.Tensor:
    """1.0 for each next-token target that trains ([b, n-1]): inside the loss mask and, for packed
    examples, inside the same non-padding segment as the token that predicts it."""
    ids = batch["input_ids"]
    weights = torch.ones(ids.shape[0], ids.shape[1] - 1, dtype=torch.float32)
    if "loss_mask" in batch:
        weights *= (batch["loss_mask"][:, 1:] == 1).float()
    if "segment_ids" in batch:
        seg = batch["segment_ids"]
        weights *= ((seg[:, 1:] == seg[:, :-1]) & (seg[:, 1:] != 0)).float()
    return weights


# The loss -------------------------------------------------------------------------------------

class LossSum(torch.nn.Module):
    """A model's summed next-token loss as one module, so DistributedDataParallel can wrap it."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, ids, weights, position_ids=None, mask=None):
        hidden = self.model.transformer(input_ids=ids, position_ids=position_ids, attention_mask=mask,
                                        use_cache=False).last_hidden_state
        logits = self.model.lm_head(hidden[:, :-1])
        losses = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1),
                                 reduction="none")
        return (losses * weights.reshape(-1)).sum()


def loss_module(model):
    """``model`` as a loss module: a LossSum (plain or in DistributedDataParallel) as it is, a bare
    CodeGen model wrapped, so callers may pass either."""
    return model if isinstance(model, (LossSum, torch.nn.parallel.DistributedDataParallel)) else LossSum(model)


def forward_loss_sum(model, batch: dict, device, autocast: bool):
    """Sum of next-token cross entropy over the trained targets, and their count. ``model``: a
    CodeGen model, or a LossSum (plain or in DistributedDataParallel)."""
    module = loss_module(model)
    ids = batch["input_ids"].to(device, torch.long)
    weights = target_weights(batch).to(device)
    position_ids, mask = None, None
    if "segment_ids" in batch:
        position_ids, mask = segment_inputs(batch["segment_ids"].to(device, torch.long))
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
        loss = module(ids, weights, position_ids, mask)
    return loss, weights.sum()


# The step -------------------------------------------------------------------------------------

def distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def train_step(model, optimizer, scheduler, micro: list, device, autocast: bool, grad_clip: float) -> dict:
    """One optimizer step over ``micro`` batches (gradient accumulation): the loss is the mean over
    every trained target of the step, whatever the batches' split over accumulation steps and
    data-parallel ranks; returns loss, lr, grad norm and the step's tokens over all ranks.

    ``model``: a CodeGen model or LossSum, or a LossSum in DistributedDataParallel, which averages
    gradients over ranks; each rank's loss is then scaled by the world size so that the average is
    the global mean."""
    module = loss_module(model)
    targets = torch.tensor(sum(float(target_weights(b).sum()) for b in micro), device=device)
    scale = 1.0
    if distributed():
        torch.distributed.all_reduce(targets)
        scale = float(torch.distributed.get_world_size())
    total_targets = max(float(targets), 1.0)
    optimizer.zero_grad(set_to_none=True)
    loss_sum = torch.zeros((), device=device)
    for index, batch in enumerate(micro):
        last = index == len(micro) - 1
        sync = module.no_sync() if hasattr(module, "no_sync") and not last else contextlib.nullcontext()
        with sync:
            loss, _ = forward_loss_sum(module, batch, device, autocast)
            (loss * (scale / total_targets)).backward()
        loss_sum += loss.detach()
    tokens = torch.tensor(sum(int(b["input_ids"].numel()) for b in micro), device=device)
    if distributed():
        torch.distributed.all_reduce(loss_sum)
        torch.distributed.all_reduce(tokens)
    grad_norm = torch.nn.utils.clip_grad_norm_(module.parameters(), grad_clip)
    lr = scheduler.get_last_lr()[0]
    optimizer.step()
    scheduler.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return {"loss": float(loss_sum) / total_targets, "lr": lr, "grad_norm": float(grad_norm),
            "tokens": int(tokens)}


# Optimizer and schedule -----------------------------------------------------------------------

def lr_lambda(train: dict):
    """The schedule's factor on ``lr`` at each step: linear warmup, then cosine down to ``min_lr_ratio``."""
    warmup, total, floor = int(train["warmup_steps"]), int(train["max_steps"]), float(train["min_lr_ratio"])

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return factor


def make_optimizer(model, train: dict):
    """AdamW with decoupled weight decay on matrices only, and the warmup + cosine schedule.
    Call after the model is on its device."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (no_decay if param.ndim < 2 or "ln_" in name else decay).append(param)
    # The fused CUDA kernel updates every parameter in a few launches instead of several per tensor.
    on_cuda = all(p.is_cuda for p in decay + no_decay)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": float(train["weight_decay"])},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=float(train["lr"]), betas=tuple(train["betas"]), eps=float(train["eps"]), fused=on_cuda or None)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(train))
    return optimizer, scheduler
