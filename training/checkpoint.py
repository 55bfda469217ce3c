"""A stage's output folder: periodic checkpoints to resume from, and the finished model.

Layout. ``OUTPUT/checkpoints/step-N/`` holds a loadable model (``config.json``, ``model.safetensors``),
``tokenizer.model``, ``sluice_lineage.json`` and ``trainer_state.pt`` (optimizer, scheduler, RNG,
step, tokens and each rank's data position). The finished model is ``OUTPUT/`` itself, its lineage
file moved in last, so a folder with both ``config.json`` and the lineage is a finished one.
Every folder is written under a temporary name and renamed, so a crash leaves none half-written,
and a run started again on the same output resumes from the latest checkpoint exactly.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from typing import Optional

import torch

from training import model as model_lib
from training.cli import UsageError
from training.lineage import LINEAGE

TOKENIZER = "tokenizer.model"
STATE = "trainer_state.pt"


@dataclasses.dataclass
class Progress:
    """How far a run has come: optimizer steps, tokens over all ranks, this rank's data position."""

    step: int = 0
    tokens: int = 0
    data: dict = dataclasses.field(default_factory=lambda: {"epoch": 0, "batch": 0})


class Checkpoints:
    """Writes and reads one run's output folder; holds what every checkpoint of the run records:
    its lineage and the dataset's tokenizer file."""

    def __init__(self, output: str, lineage: dict, tokenizer: str):
        self.output, self.lineage, self.tokenizer = output, lineage, tokenizer

    def fingerprints(self) -> dict:
        """What a checkpoint must match to be resumed: the run's config and dataset manifest."""
        return {"config_fingerprint": self.lineage["config_fingerprint"],
                "manifest_fingerprint": self.lineage["data"]["manifest_fingerprint"]}

    def lineage_at(self, progress: Progress, **extra) -> dict:
        """The run's lineage plus how far the model it goes with was trained."""
        return {**self.lineage, "steps": progress.step, "tokens": progress.tokens, **extra}

    def resume(self, model, optimizer, scheduler, rank: int, world: int) -> Optional[Progress]:
        """Load the latest checkpoint into model, optimizer, scheduler and the RNG, and return its
        progress for this rank; None when there is none. Refused when it was written with another
        config, dataset or number of ranks."""
        saved = checkpoint_dirs(self.output)
        if not saved:
            return None
        latest = saved[-1]
        state = torch.load(os.path.join(latest, STATE), weights_only=False)
        if any(state[key] != value for key, value in self.fingerprints().items()):
            raise UsageError(f"{latest} was written with another config or dataset; use a new --output")
        model.load_state_dict(model_lib.load(latest).state_dict())
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        if len(state["data"]) != world:
            raise UsageError(f"{latest} was written by {len(state['data'])} ranks; resume with as many")
        progress = Progress(state["step"], state["tokens"], state["data"][rank])
        if rank == 0:
            print(json.dumps({"resumed": latest, "step": progress.step}), flush=True)
        return progress

    def save(self, model, optimizer, scheduler, progress: Progress, data_states: list) -> None:
        """Write ``checkpoints/step-N/``: the model, and the trainer state with every rank's data position."""
        folder = step_dir(self.output, progress.step)
        tmp = save_model(model, folder, self.lineage_at(progress), self.tokenizer)
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "rng": rng_state(), "step": progress.step, "tokens": progress.tokens, "data": data_states,
                    **self.fingerprints()},
                   os.path.join(tmp, STATE))
        publish(tmp, folder)

    def finish(self, model, progress: Progress, world: int) -> None:
        """Make the output folder itself the finished checkpoint; its lineage file goes last."""
        tmp = save_model(model, os.path.join(self.output, "final"), self.lineage_at(progress, world_size=world),
                         self.tokenizer)
        for name in sorted(os.listdir(tmp), key=lambda n: n == LINEAGE):
            os.replace(os.path.join(tmp, name), os.path.join(self.output, name))
        os.rmdir(tmp)


def finished(output: str) -> bool:
    """Whether ``output`` already holds a finished checkpoint (which a run must not overwrite)."""
    return os.path.exists(os.path.join(output, LINEAGE)) and os.path.exists(os.path.join(output, "config.json"))


def step_dir(output: str, step: int) -> str:
    return os.path.join(output, "checkpoints", f"step-{step:08d}")


def checkpoint_dirs(output: str) -> list:
    """The complete periodic checkpoints (those with a trainer state), oldest first."""
    root = os.path.join(output, "checkpoints")
    if not os.path.isdir(root):
        return []
    steps = sorted(int(name.split("-")[1]) for name in os.listdir(root)
                   if name.startswith("step-") and os.path.exists(os.path.join(root, name, STATE)))
    return [step_dir(output, s) for s in steps]


def save_model(model, folder: str, lineage: dict, tokenizer: str) -> str:
    """Write a loadable checkpoint to ``folder``'s temporary name, returned; :func:`publish` renames it,
    so a crash leaves no half-written folder."""
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
