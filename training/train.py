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

The step's arithmetic (loss, accumulation, optimizer) is ``training/step.py``; the output folder
and resume ``training/checkpoint.py``; the lineage record ``training/lineage.py``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time

import torch

from schemas import dataset_version as dv
from schemas import shard_batches
from schemas.files import sha256_of
from schemas.tokenizer import Tokenizer
from training import data as data_lib
from training import model as model_lib
from training.checkpoint import TOKENIZER, Checkpoints, Progress, finished
from training.cli import ArgumentParser, UsageError, run_main
from training.lineage import lineage_record, read_lineage
from training.step import LossSum, make_optimizer, train_step

STAGES = ("nl", "multi", "mono", "instruct")
STAGE_DATASET = {"nl": "nl", "multi": "multi", "mono": "mono"}  # instruct: any stream with a loss_mask


def parse_args(argv):
    parser = ArgumentParser(prog="python -m training.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", required=True, choices=STAGES)
    parser.add_argument("--data", required=True,
                        help="Dataset version folder (manifest.json), local or fsspec URL, or an alias of one"
                             " (ROOT/DATASET/@ALIAS[/SPLIT]), resolved once at the start.")
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


# Config and inputs ---------------------------------------------------------------------------

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


@dataclasses.dataclass
class StageInputs:
    """The dataset version's manifest and the tokenizer it was tokenized with, checked against the stage."""

    manifest: dict
    tokenizer_path: str
    tokenizer: Tokenizer


def read_inputs(args) -> StageInputs:
    """Read and check ``--data``, ``--stage``, ``--init`` and the tokenizer before any device work.
    An alias in ``--data`` is resolved first and ``args.data`` becomes the version it names, so the
    lineage records the version and a resume after the alias moved is refused (fingerprints)."""
    try:
        args.data = dv.resolve(args.data)
        manifest = dv.read_manifest(args.data)
        dv.require_stream(manifest, args.data)
    except dv.DatasetError as err:
        raise UsageError(str(err)) from None
    check_stage(args, manifest)
    path = resolve_tokenizer(args, manifest)
    return StageInputs(manifest, path, Tokenizer.from_file(path))


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
    """A stage trains on its own dataset, and after nl from a parent of the same tokenizer."""
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


# Setup ----------------------------------------------------------------------------------------

def place(flag: str) -> tuple:
    """``(device, rank, world_size)`` from ``--device``; under torchrun each rank takes its local GPU."""
    device = torch.device("cuda" if flag == "auto" and torch.cuda.is_available()
                          else ("cpu" if flag == "auto" else flag))
    rank, world = init_distributed(device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    return device, rank, world


def init_distributed(device) -> tuple:
    """``(rank, world_size)``; under torchrun (WORLD_SIZE > 1) joins the process group first."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return torch.distributed.get_rank(), world


def stage_model(args, config: dict, tok: Tokenizer):
    """nl: a new model from the config, its weights from the seed; a later stage: the parent
    checkpoint, whose vocabulary must be the tokenizer's. Either way the RNG is then seeded."""
    seed = int(config["train"]["seed"])
    if not args.init:
        mcfg = model_lib.model_config(config["model"], tok.vocab_size, eos_token_id=tok.eot_id, pad_token_id=tok.pad_id)
        return model_lib.build(mcfg, seed)
    model = model_lib.load(args.init)
    if model.config.vocab_size != tok.vocab_size:
        raise UsageError(f"{args.init} has vocab {model.config.vocab_size}, the tokenizer {tok.vocab_size}")
    torch.manual_seed(seed)
    return model


def dataset_has(dataset: data_lib.PackedDataset, column: str) -> bool:
    """Whether the stream has ``column`` (read off its first non-empty shard)."""
    shard = next(s for s in dataset.shards if s["records"])
    return column in next(shard_batches.iter_batches(shard["url"], dataset.fmt))


# The run --------------------------------------------------------------------------------------

class TrainRun:
    """One stage's run in this process: device and rank, model, optimizer and schedule, data, its
    output folder and how far it has come (resumed from the latest checkpoint when there is one)."""

    def __init__(self, args, config: dict, inputs: StageInputs):
        self.args, self.train_cfg = args, config["train"]
        self.device, self.rank, self.world = place(args.device)
        self.autocast = self.device.type == "cuda"
        self.model = stage_model(args, config, inputs.tokenizer)
        self.place_model()
        self.optimizer, self.scheduler = make_optimizer(self.model, self.train_cfg)
        self.module = self.loss_module()
        lineage = lineage_record(args.stage, args.data, inputs.manifest, config, args.init)
        self.checkpoints = Checkpoints(args.output, lineage, inputs.tokenizer_path)
        self.progress = self.checkpoints.resume(self.model, self.optimizer, self.scheduler,
                                                self.rank, self.world) or Progress()
        self.dataset = self.open_dataset()
        self.batches = iter(data_lib.loader(self.dataset, num_workers=int(self.train_cfg["num_workers"])))
        self.log = StepLog(args.output, self.rank, int(self.train_cfg["log_every"]),
                           int(self.train_cfg["max_steps"]))

    def place_model(self) -> None:
        """On its device in train mode, compiled where --compile asks (auto: on CUDA)."""
        self.model.to(self.device).train()
        if self.args.compile == "on" or (self.args.compile == "auto" and self.device.type == "cuda"):
            # In place (Module.compile), so parameter names and checkpoints stay those of CodeGen.
            self.model.transformer.compile()

    def loss_module(self):
        """The module a step runs: the loss as one module, in DistributedDataParallel over ranks."""
        module = LossSum(self.model)
        if self.world > 1:
            module = torch.nn.parallel.DistributedDataParallel(
                module, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        return module

    def open_dataset(self) -> data_lib.PackedDataset:
        """This rank's endless stream of batches from the resumed data position."""
        train, args = self.train_cfg, self.args
        dataset = data_lib.PackedDataset(args.data, int(train["batch_size"]), fmt=train["format"],
                                         seed=int(train["seed"]), rank=self.rank, world_size=self.world,
                                         state=self.progress.data, epochs=None, verify=args.verify)
        if args.stage == "instruct" and not dataset_has(dataset, "loss_mask"):
            raise UsageError(f"--stage instruct needs a stream with a loss_mask; {args.data} has none")
        return dataset

    def train(self) -> None:
        """Step up to max_steps, with a checkpoint every checkpoint_every steps and at the last."""
        max_steps, every = int(self.train_cfg["max_steps"]), int(self.train_cfg["checkpoint_every"])
        while self.progress.step < max_steps:
            self.step()
            if self.progress.step % every == 0 or self.progress.step == max_steps:
                self.save_checkpoint()

    def step(self) -> None:
        """One optimizer step on the next grad_accum batches; the data position moves past them."""
        t0 = time.perf_counter()
        micro = [next(self.batches) for _ in range(int(self.train_cfg["grad_accum"]))]
        t1 = time.perf_counter()
        data_state = self.dataset.state_after(micro[-1])
        stats = train_step(self.module, self.optimizer, self.scheduler, micro, self.device, self.autocast,
                           float(self.train_cfg["grad_clip"]))
        self.progress.step += 1
        self.progress.tokens += stats["tokens"]
        self.progress.data = data_state
        self.log.record(self.progress, stats, wait=t1 - t0, seconds=time.perf_counter() - t0)

    def save_checkpoint(self) -> None:
        """Rank 0 writes the checkpoint with every rank's own data position (ranks' epochs may
        differ by one batch); the other ranks wait for it."""
        data_states = [self.progress.data]
        if self.world > 1:
            data_states = [None] * self.world
            torch.distributed.all_gather_object(data_states, self.progress.data)
        if self.rank == 0:
            self.checkpoints.save(self.model, self.optimizer, self.scheduler, self.progress, data_states)
        if self.world > 1:
            torch.distributed.barrier()

    def finish(self) -> dict:
        """Rank 0 makes the output folder the finished checkpoint; every rank leaves the process
        group. Returns the output folder and the last step's stats."""
        if self.rank != 0:
            torch.distributed.destroy_process_group()
            return {"output": self.args.output, "rank": self.rank, **self.log.last}
        self.log.close()
        self.checkpoints.finish(self.model, self.progress, self.world)
        if self.world > 1:
            torch.distributed.destroy_process_group()
        return {"output": self.args.output, **self.log.last}


class StepLog:
    """Rank 0's line every log_every steps and at the last, to stdout and OUTPUT/log.jsonl, with
    tokens/s and the share of time spent waiting for data over the steps since the previous line."""

    def __init__(self, output: str, rank: int, every: int, max_steps: int):
        os.makedirs(output, exist_ok=True)
        self.file = open(os.path.join(output, "log.jsonl"), "a", encoding="utf-8") if rank == 0 else None
        self.every, self.max_steps = every, max_steps
        self.window = empty_window()
        self.last = {}  # the last step's stats, which main returns

    def record(self, progress: Progress, stats: dict, wait: float, seconds: float) -> None:
        self.window["time"] += seconds
        self.window["wait"] += wait
        self.window["tokens"] += stats["tokens"]
        self.last = {"step": progress.step, "loss": stats["loss"], "lr": stats["lr"],
                     "grad_norm": stats["grad_norm"], "tokens": progress.tokens}
        if self.file is not None and (progress.step % self.every == 0 or progress.step == self.max_steps):
            self.last.update(tokens_per_s=self.window["tokens"] / self.window["time"],
                             data_wait_share=self.window["wait"] / self.window["time"])
            line = json.dumps(self.last)
            print(line, flush=True)
            self.file.write(line + "\n")
            self.file.flush()
            self.window = empty_window()

    def close(self) -> None:
        self.file.close()


def empty_window() -> dict:
    """Seconds, seconds waiting for data, and tokens, summed over the steps since the last log line."""
    return {"time": 0.0, "wait": 0.0, "tokens": 0}


def main(argv=None) -> dict:
    """Train one stage into ``--output`` (resuming there if a run stopped); returns the output
    folder and the last step's stats."""
    args = parse_args(argv)
    config = load_config(args)
    inputs = read_inputs(args)
    if finished(args.output):
        raise UsageError(f"--output: {args.output} already holds a finished checkpoint")
    stage_run = TrainRun(args, config, inputs)
    stage_run.train()
    return stage_run.finish()


def run(argv=None) -> int:
    return run_main(main, argv, (dv.DatasetError,))


if __name__ == "__main__":
    sys.exit(run())
