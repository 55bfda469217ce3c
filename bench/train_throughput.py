#!/usr/bin/env python
"""Training throughput of a stage: tokens/s and the share of step time spent waiting on data.

    python bench/train_throughput.py [--config training/configs/mono.json] [--batch_size 16]
        [--grad_accum 1] [--seq_len 2048] [--steps 20] [--warmup 5] [--workers 2] [--device auto]
        [--attention sdpa|eager] [--compile] [--data VERSION_DIR] [--json PATH]

The measurement the issue asks for on one H100: the CodeGen-350M config at seq_len 2048, bf16
autocast, AdamW, through the same code as ``training.train`` (``training.step.train_step`` over batches
from ``training.data.PackedDataset`` and a DataLoader with workers). Without ``--data`` the
batches come from a synthetic dataset version of random token ids (vocabulary 51,200, as
CodeGen's), published in a temporary folder, so the reader, its checksums and its workers are
all in the loop. ``--attention eager`` runs the stock transformers CodeGen attention instead, for
the reference figure. Steps after ``--warmup`` are timed; data wait = time blocked in ``next()``
on the DataLoader, over the whole step time (the step ends with a device synchronisation).

Prepared for the GPU; on CPU run it with ``--config training/configs/tiny.json`` to check it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

import torch

import harness  # first: it puts the repository on sys.path
from schemas import dataset_version as dv  # noqa: E402
from training import data  # noqa: E402
from training.step import make_optimizer, train_step  # noqa: E402
from training import model as model_lib  # noqa: E402

VOCAB = harness.CODEGEN_VOCAB


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=os.path.join(model_lib.CONFIG_DIR, "mono.json"))
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--grad_accum", type=int, default=1)
    parser.add_argument("--seq_len", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--attention", default="sdpa", choices=("sdpa", "eager"))
    parser.add_argument("--compile", action="store_true", help="torch.compile the model first.")
    parser.add_argument("--data", help="A dataset version to read instead of synthetic tokens.")
    parser.add_argument("--json")
    return parser.parse_args(argv)


def pick_device(name: str) -> torch.device:
    device = torch.device("cuda" if name == "auto" and torch.cuda.is_available()
                          else ("cpu" if name == "auto" else name))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    return device


def synthetic(folder: str, args) -> None:
    """Enough random sequences for every step, in 4 shards."""
    rows = args.batch_size * args.grad_accum * (args.steps + args.warmup + 2)
    harness.write_synthetic_version(folder, [rows // 4 + 1] * 4, args.seq_len, VOCAB, batch_rows=64)


def build_model(config: dict, vocab: int, args, device: torch.device):
    """The config's model at ``--seq_len`` at least, SDPA (Sluice's) or eager (stock transformers)."""
    mcfg = model_lib.model_config({**config["model"], "n_positions": max(config["model"].get("n_positions", 0),
                                                                           args.seq_len)}, vocab, eos_token_id=2)
    if args.attention == "eager":
        from transformers import CodeGenForCausalLM

        torch.manual_seed(0)
        mcfg._attn_implementation_internal = "eager"
        model = CodeGenForCausalLM(mcfg)
    else:
        model = model_lib.build(mcfg, seed=0)
    model.to(device).train()
    return model


def measure_steps(model, train_cfg: dict, folder: str, args, device: torch.device) -> tuple[dict, list]:
    """Step time, data wait and tokens over the steps after the warm-up, and every step's loss."""
    optimizer, scheduler = make_optimizer(model, train_cfg)
    dataset = data.PackedDataset(folder, args.batch_size, seed=0, epochs=None)
    batches = iter(data.loader(dataset, num_workers=args.workers, pin_memory=device.type == "cuda"))
    timed = {"time": 0.0, "wait": 0.0, "tokens": 0}
    losses = []
    for step in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        micro = [next(batches) for _ in range(args.grad_accum)]
        t1 = time.perf_counter()
        stats = train_step(model, optimizer, scheduler, micro, device, device.type == "cuda", 1.0)
        t2 = time.perf_counter()
        losses.append(stats["loss"])
        if step >= args.warmup:
            timed["time"] += t2 - t0
            timed["wait"] += t1 - t0
            timed["tokens"] += stats["tokens"]
    return timed, losses


def main(argv=None) -> dict:
    args = parse_args(argv)
    device = pick_device(args.device)
    config = model_lib.read_config_file(args.config)
    train_cfg = {**config["train"], "max_steps": args.steps + args.warmup, "warmup_steps": 2}
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.data
        if not folder:
            folder = os.path.join(tmp, "version")
            synthetic(folder, args)
        manifest = dv.read_manifest(folder)
        vocab = int(manifest["tokenizer"].get("vocab_size") or VOCAB)
        model = build_model(config, vocab, args, device)
        params = sum(p.numel() for p in model.parameters())
        if args.compile:
            model.transformer.compile()  # as training.train --compile does
        timed, losses = measure_steps(model, train_cfg, folder, args, device)
        report = {
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
            "torch": torch.__version__, "config": os.path.basename(args.config), "parameters": params,
            "attention": args.attention, "compile": args.compile, "batch": [args.batch_size, args.seq_len],
            "grad_accum": args.grad_accum, "workers": args.workers, "timed_steps": args.steps,
            "tokens_per_s": timed["tokens"] / timed["time"], "data_wait_share": timed["wait"] / timed["time"],
            "step_s": timed["time"] / args.steps, "loss_first_last": [losses[0], losses[-1]],
            "max_memory_gb": torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else None,
        }
    print(json.dumps(report), flush=True)
    if args.json:
        harness.write_json(args.json, report)
    return report


if __name__ == "__main__":
    main()
