"""Training stages as in CodeGen: NL from scratch, then Multi, then Mono, then instruction tuning.

    python -m training.train --stage nl|multi|mono|instruct --data VERSION_DIR [--init CHECKPOINT] \
        --output CHECKPOINT_DIR [--config FILE] [--max_steps N] [--format arrow|tfrecord] \
        [--tokenizer MODEL.model] [--device auto|cpu|cuda] [--num_workers N] [--compile auto|on|off]

``nl`` builds a model from the config; every later stage starts from ``--init`` (the previous
stage's output). The output folder is a ``transformers`` checkpoint (``CodeGenForCausalLM``
loads it) plus ``tokenizer.model`` and ``sluice_lineage.json``, which records the dataset version
(``dataset/version[/split]`` from its manifest, the manifest fingerprint, the version's parents and
so its tokenizer's version) and the parent checkpoint's lineage, so a model's data can be read back.
Periodic checkpoints go to ``OUTPUT/checkpoints/step-N/`` with the optimizer, scheduler, RNG and
data position; a run started again on the same output resumes from the latest one exactly.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
import time

import torch
import torch.nn.functional as F

from schemas import dataset_version as dv
from schemas import shard_batches
from schemas.files import join, sha256_of
from schemas.manifest import fingerprint
from schemas.tokenizer import Tokenizer
from schemas.version import __version__
from training.cli import ArgumentParser, UsageError, run_main
from training import data as data_lib
from training import model as model_lib

STAGES = ("nl", "multi", "mono", "instruct")
STAGE_DATASET = {"nl": "nl", "multi": "multi", "mono": "mono"}  # instruct: any stream with a loss_mask
LINEAGE = "sluice_lineage.json"
TOKENIZER = "tokenizer.model"
STATE = "trainer_state.pt"


def parse_args(argv):
    parser = ArgumentParser(prog="python -m training.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", required=True, choices=STAGES)
    parser.add_argument("--data", required=True, help="Dataset version folder (manifest.json), local or fsspec URL.")
    parser.add_argument("--init", help="Parent checkpoint (required for every stage but nl).")
    parser.add_argument("--output", required=True, help="Checkpoint folder to write (and resume from).")
    parser.add_argument("--config", help="Config JSON (default: training/configs/STAGE.json).")
    parser.add_argument("--max_steps", type=int, help="Override the config's max_steps.")
    parser.add_argument("--format", choices=dv.FORMATS, help="Shard format to read (config's by default).")
    parser.add_argument("--tokenizer", help="tokenizer.model (default: the manifest's, checked by sha256).")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--num_workers", type=int, help="DataLoader workers (config's by default).")
    parser.add_argument("--verify", default="first_open", choices=("first_open", "never"),
                        help="Check each shard's sha256 before first use, or never.")
    parser.add_argument("--compile", default="auto", choices=("auto", "on", "off"),
                        help="torch.compile the transformer blocks (auto: on CUDA only). On an H100 it took the "
                             "CodeGen-350M stage from 76k to 137k tokens/s (bench/train_throughput.py).")
    return parser.parse_args(argv)


# Config, lineage, tokenizer -------------------------------------------------------------------

def load_config(args) -> dict:
    path = args.config or os.path.join(model_lib.CONFIG_DIR, f"{args.stage}.json")
    try:
        config = model_lib.read_config_file(path)
    except (OSError, ValueError) as err:
        raise UsageError(f"--config: cannot read {path}: {err}") from None
    needed = ("batch_size", "grad_accum", "lr", "min_lr_ratio", "warmup_steps", "max_steps", "weight_decay",
              "betas", "eps", "grad_clip", "seed", "checkpoint_every", "log_every", "format", "num_workers")
    missing = [f"train.{k}" for k in needed if k not in config.get("train", {})]
    missing += ["model"] if args.stage == "nl" and "model" not in config else []
    if missing:
        raise UsageError(f"--config {path}: missing {', '.join(missing)}")
    if args.max_steps is not None:
        config["train"]["max_steps"] = args.max_steps
    if args.format:
        config["train"]["format"] = args.format
    if args.num_workers is not None:
        config["train"]["num_workers"] = args.num_workers
    for key in ("batch_size", "grad_accum", "max_steps", "checkpoint_every", "log_every"):
        if int(config["train"][key]) < 1:
            raise UsageError(f"config train.{key} must be >= 1")
    return config


def read_lineage(checkpoint: str) -> dict:
    """The lineage a checkpoint folder records (stage, dataset version, parent lineage...)."""
    path = os.path.join(checkpoint, LINEAGE)
    if not os.path.exists(path):
        raise UsageError(f"{checkpoint}: no {LINEAGE} (not a Sluice checkpoint)")
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def lineage_chain(checkpoint: str) -> list:
    """One entry per stage, from the first to this checkpoint: ``{"stage", "data"`` (dataset/version
    [/split]), ``"manifest_fingerprint", "tokenizer"`` (the tokenizer's version, dataset/version)``}``."""
    chain, node = [], read_lineage(checkpoint)
    while node:
        data = node["data"]
        # checkpoints from before manifest format 2 name the dataset only
        chain.append({"stage": node["stage"], "data": data.get("version", data["dataset"]),
                      "manifest_fingerprint": data["manifest_fingerprint"], "tokenizer": data.get("tokenizer_version")})
        node = node.get("parent")
    return chain[::-1]


def tokenizer_version(manifest: dict):
    """``tokenizer/VERSION`` the dataset's lineage names as its tokenizer's parent version (None when
    the tokenizer file was not a published version)."""
    parent = manifest["lineage"]["parents"].get("tokenizer")
    if not parent:
        return None
    return "/".join(str(p) for p in (parent.get("dataset"), parent.get("version")) if p) or parent.get("path")


def file_sha256(path: str) -> str:
    with open(path, "rb") as handle:
        return sha256_of(handle)[1]


def resolve_tokenizer(args, manifest: dict) -> str:
    """The dataset's tokenizer file, found by flag, the manifest's path or the parent checkpoint,
    and accepted only if its sha256 is the one the dataset was tokenized with."""
    expected = manifest["tokenizer"]["sha256"]
    candidates = [args.tokenizer] if args.tokenizer else [
        manifest["tokenizer"].get("path"), args.init and os.path.join(args.init, TOKENIZER)]
    for path in candidates:
        if path and os.path.exists(path):
            if file_sha256(path) != expected:
                raise UsageError(f"tokenizer {path} is not the one {args.data} was tokenized with (sha256)")
            return path
    raise UsageError(f"no tokenizer with sha256 {expected[:12]}... found; pass --tokenizer")


def check_stage(args, manifest: dict) -> None:
    want = STAGE_DATASET.get(args.stage)
    if want and manifest["dataset"] != want:
        raise UsageError(f"--stage {args.stage} trains on a '{want}' dataset; {args.data} is '{manifest['dataset']}'")
    if args.stage == "nl" and args.init:
        raise UsageError("--stage nl trains from scratch: no --init")
    if args.stage != "nl" and not args.init:
        raise UsageError(f"--stage {args.stage} starts from the previous stage: pass --init CHECKPOINT")
    if args.init:
        parent = read_lineage(args.init)
        if parent["data"]["tokenizer_sha256"] != manifest["tokenizer"]["sha256"]:
            raise UsageError(f"{args.data} uses another tokenizer than {args.init} was trained with")


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


def forward_loss_sum(model, batch: dict, device, autocast: bool):
    """Sum of next-token cross entropy over the trained targets, and their count. ``model``: a
    CodeGen model, or a LossSum (plain or in DistributedDataParallel)."""
    module = model if isinstance(model, (LossSum, torch.nn.parallel.DistributedDataParallel)) else LossSum(model)
    ids = batch["input_ids"].to(device, torch.long)
    weights = target_weights(batch).to(device)
    position_ids, mask = None, None
    if "segment_ids" in batch:
        position_ids, mask = segment_inputs(batch["segment_ids"].to(device, torch.long))
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
        loss = module(ids, weights, position_ids, mask)
    return loss, weights.sum()


def distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def train_step(model, optimizer, scheduler, micro: list, device, autocast: bool, grad_clip: float) -> dict:
    """One optimizer step over ``micro`` batches (gradient accumulation): the loss is the mean over
    every trained target of the step, whatever the batches' split over accumulation steps and
    data-parallel ranks; returns loss, lr, grad norm and the step's tokens over all ranks.

    ``model``: a CodeGen model or LossSum, or a LossSum in DistributedDataParallel, which averages
    gradients over ranks; each rank's loss is then scaled by the world size so that the average is
    the global mean."""
    module = model if isinstance(model, (LossSum, torch.nn.parallel.DistributedDataParallel)) else LossSum(model)
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


# Checkpoints ----------------------------------------------------------------------------------

def checkpoint_dirs(output: str) -> list:
    root = os.path.join(output, "checkpoints")
    if not os.path.isdir(root):
        return []
    steps = sorted(int(name.split("-")[1]) for name in os.listdir(root)
                   if name.startswith("step-") and os.path.exists(os.path.join(root, name, STATE)))
    return [os.path.join(root, f"step-{s:08d}") for s in steps]


def save_model(model, folder: str, lineage: dict, tokenizer: str) -> None:
    """Write a loadable checkpoint folder through a temporary name, so a crash leaves none half-written."""
    tmp = folder + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    shutil.copyfile(tokenizer, os.path.join(tmp, TOKENIZER))
    with open(os.path.join(tmp, LINEAGE), "w", encoding="utf-8") as handle:
        json.dump(lineage, handle, indent=2, sort_keys=True)
    return tmp


def publish(tmp: str, folder: str) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


def rng_state() -> dict:
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# The run --------------------------------------------------------------------------------------

def main(argv=None) -> dict:
    args = parse_args(argv)
    config = load_config(args)
    train = config["train"]
    try:
        manifest = dv.read_manifest(args.data)
        dv.require_stream(manifest, args.data)
    except dv.DatasetError as err:
        raise UsageError(str(err)) from None
    check_stage(args, manifest)
    tokenizer_path = resolve_tokenizer(args, manifest)
    tok = Tokenizer.from_file(tokenizer_path)
    if os.path.exists(os.path.join(args.output, LINEAGE)) and os.path.exists(os.path.join(args.output, "config.json")):
        raise UsageError(f"--output: {args.output} already holds a finished checkpoint")
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    rank, world = init_distributed(device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    autocast = device.type == "cuda"

    seed = int(train["seed"])
    if args.init:
        model = model_lib.load(args.init)
        if model.config.vocab_size != tok.vocab_size:
            raise UsageError(f"{args.init} has vocab {model.config.vocab_size}, the tokenizer {tok.vocab_size}")
        parent = read_lineage(args.init)
        torch.manual_seed(seed)
    else:
        mcfg = model_lib.model_config(config["model"], tok.vocab_size, eos_token_id=tok.eot_id, pad_token_id=tok.pad_id)
        model = model_lib.build(mcfg, seed)
        parent = None
    model.to(device).train()
    if args.compile == "on" or (args.compile == "auto" and device.type == "cuda"):
        # In place (Module.compile), so parameter names and checkpoints stay those of CodeGen.
        model.transformer.compile()
    optimizer, scheduler = make_optimizer(model, train)
    module = LossSum(model)
    if world > 1:
        module = torch.nn.parallel.DistributedDataParallel(
            module, device_ids=[device.index] if device.type == "cuda" else None)

    lineage = {
        "stage": args.stage,
        "sluice": __version__,
        "data": {"path": args.data, "dataset": manifest["dataset"], "version": dv.version_label(manifest),
                 "format": train["format"], "manifest_fingerprint": dv.manifest_fingerprint(manifest),
                 "parents": manifest["lineage"]["parents"], "tokenizer_version": tokenizer_version(manifest),
                 "config_fingerprint": manifest["config_fingerprint"],
                 "tokenizer_sha256": manifest["tokenizer"]["sha256"], "sequences": manifest["totals"]["records"],
                 "seq_len": dv.seq_len_of(manifest)},
        "parent_path": args.init,
        "parent": parent,
        "config": config,
        "config_fingerprint": fingerprint(config),
    }

    step, tokens_seen, data_state = 0, 0, {"epoch": 0, "batch": 0}
    saved = checkpoint_dirs(args.output)
    if saved:
        state = torch.load(os.path.join(saved[-1], STATE), weights_only=False)
        if state["config_fingerprint"] != lineage["config_fingerprint"] or \
                state["manifest_fingerprint"] != lineage["data"]["manifest_fingerprint"]:
            raise UsageError(f"{saved[-1]} was written with another config or dataset; use a new --output")
        model.load_state_dict(model_lib.load(saved[-1]).state_dict())
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        if len(state["data"]) != world:
            raise UsageError(f"{saved[-1]} was written by {len(state['data'])} ranks; resume with as many")
        step, tokens_seen, data_state = state["step"], state["tokens"], state["data"][rank]
        if rank == 0:
            print(json.dumps({"resumed": saved[-1], "step": step}), flush=True)

    dataset = data_lib.PackedDataset(args.data, int(train["batch_size"]), fmt=train["format"], seed=seed,
                                     rank=rank, world_size=world, state=data_state, epochs=None,
                                     verify=args.verify)
    if args.stage == "instruct" and not dataset_has(dataset, "loss_mask"):
        raise UsageError(f"--stage instruct needs a stream with a loss_mask; {args.data} has none")
    batches = iter(data_lib.loader(dataset, num_workers=int(train["num_workers"])))
    os.makedirs(args.output, exist_ok=True)
    log = open(os.path.join(args.output, "log.jsonl"), "a", encoding="utf-8") if rank == 0 else None
    max_steps, accum = int(train["max_steps"]), int(train["grad_accum"])
    window = {"time": 0.0, "wait": 0.0, "tokens": 0, "steps": 0}
    last = {}
    while step < max_steps:
        t0 = time.perf_counter()
        micro = [next(batches) for _ in range(accum)]
        t1 = time.perf_counter()
        data_state = dataset.state_after(micro[-1])
        stats = train_step(module, optimizer, scheduler, micro, device, autocast, float(train["grad_clip"]))
        step_tokens = stats["tokens"]
        step += 1
        tokens_seen += step_tokens
        t2 = time.perf_counter()
        window["time"] += t2 - t0
        window["wait"] += t1 - t0
        window["tokens"] += step_tokens
        window["steps"] += 1
        last = {"step": step, "loss": stats["loss"], "lr": stats["lr"], "grad_norm": stats["grad_norm"],
                "tokens": tokens_seen}
        if rank == 0 and (step % int(train["log_every"]) == 0 or step == max_steps):
            last.update(tokens_per_s=window["tokens"] / window["time"],
                        data_wait_share=window["wait"] / window["time"])
            print(json.dumps(last), flush=True)
            log.write(json.dumps(last) + "\n")
            log.flush()
            window = {"time": 0.0, "wait": 0.0, "tokens": 0, "steps": 0}
        if step % int(train["checkpoint_every"]) == 0 or step == max_steps:
            data_states = [data_state]
            if world > 1:  # every rank's own position: ranks' epochs may differ by one batch
                data_states = [None] * world
                torch.distributed.all_gather_object(data_states, data_state)
            if rank != 0:
                torch.distributed.barrier()
                continue
            folder = os.path.join(args.output, "checkpoints", f"step-{step:08d}")
            tmp = save_model(model, folder, {**lineage, "steps": step, "tokens": tokens_seen}, tokenizer_path)
            torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                        "rng": rng_state(), "step": step, "tokens": tokens_seen, "data": data_states,
                        "config_fingerprint": lineage["config_fingerprint"],
                        "manifest_fingerprint": lineage["data"]["manifest_fingerprint"]},
                       os.path.join(tmp, STATE))
            publish(tmp, folder)
            if world > 1:
                torch.distributed.barrier()
    if rank != 0:
        torch.distributed.destroy_process_group()
        return {"output": args.output, "rank": rank, **last}
    log.close()
    final = {**lineage, "steps": step, "tokens": tokens_seen, "world_size": world}
    tmp = save_model(model, os.path.join(args.output, "final"), final, tokenizer_path)
    # The output folder itself becomes the finished checkpoint; its lineage file goes last.
    for name in sorted(os.listdir(tmp), key=lambda n: n == LINEAGE):
        os.replace(os.path.join(tmp, name), os.path.join(args.output, name))
    os.rmdir(tmp)
    if world > 1:
        torch.distributed.destroy_process_group()
    return {"output": args.output, **last}


def init_distributed(device) -> tuple:
    """``(rank, world_size)``; under torchrun (WORLD_SIZE > 1) joins the process group first."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return torch.distributed.get_rank(), world


def dataset_has(dataset: data_lib.PackedDataset, column: str) -> bool:
    """Whether the stream has ``column`` (read off its first non-empty shard)."""
    shard = next(s for s in dataset.shards if s["records"])
    return column in next(shard_batches.iter_batches(join(dataset.data, shard["path"]), dataset.fmt))


def run(argv=None) -> int:
    return run_main(main, argv, (dv.DatasetError,))


if __name__ == "__main__":
    sys.exit(run())
