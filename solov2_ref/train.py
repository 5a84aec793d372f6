"""Train the compact SOLOv2 from scratch on synthetic scenes, on a CPU.

    python -m solov2_ref.train --iters 4000 --batch-size 8 --lr 2e-3 --seed 0 \\
        --out solov2_ref/checkpoints/solov2_synth.pt

Every batch holds fresh scenes of the endless ``"train"`` stream (scene ``i`` of batch ``t`` is scene
``t * batch_size + i`` of seed ``--seed``), so a run is reproducible from its command line on one machine.
AdamW with a linear warm-up and a cosine decay; gradients clipped at norm 10 (mmdetection: SGD, norm 35).
The checkpoint stores the model config, the weights (float16 unless ``--fp32``) and how it was made.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .data import Scene, SyntheticScenes
from .losses import solov2_loss
from .model import SOLOv2, SOLOv2Config, images_to_tensor
from .targets import LevelTargets, assign_targets

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "solov2_synth.pt"


def make_batch(scenes: Sequence[Scene], cfg: SOLOv2Config) -> tuple[torch.Tensor, list[list[LevelTargets]]]:
    """Images (B, 3, H, W) in [0, 1] and per-image targets for a list of scenes."""
    images = images_to_tensor(np.stack([s.image for s in scenes]))
    targets = [assign_targets(torch.from_numpy(s.masks), torch.from_numpy(s.labels), cfg) for s in scenes]
    return images, targets


def train_step(model: SOLOv2, optimizer: torch.optim.Optimizer, images: torch.Tensor,
               targets: list[list[LevelTargets]], max_grad_norm: float = 10.0) -> dict[str, float]:
    """One optimisation step; returns the losses before the step as floats."""
    model.train()
    losses = solov2_loss(model(images), targets)
    optimizer.zero_grad(set_to_none=True)
    losses["loss"].backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    return {k: float(v.detach()) for k, v in losses.items()}


def make_optimizer(model: SOLOv2, lr: float, weight_decay: float = 1e-4) -> torch.optim.Optimizer:
    # no weight decay on norms and biases, which only rescale and shift
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    rest = [p for n, p in model.named_parameters() if p.ndim <= 1]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": rest, "weight_decay": 0.0}], lr=lr)


def learning_rate(step: int, total: int, base: float, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 1% of ``base`` at ``total``."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))


def save_checkpoint(model: SOLOv2, path: Path, meta: dict[str, Any], fp16: bool = True) -> None:
    """Save ``{"config", "state_dict", "meta"}``; floating tensors as float16 when ``fp16``."""
    state = {k: (v.half() if fp16 and v.is_floating_point() else v).clone() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": model.cfg.to_dict(), "state_dict": state, "meta": meta}, path)


def portable_command(command: str) -> str:
    """A checkpoint's recorded training command without the paths of the machine that ran it.

    ``--out PATH`` and ``--out=PATH`` keep only the file name (``--out solov2_synth.pt``), so the command
    shown by ``matrixnms demo`` runs anywhere and writes into the current folder; every other argument is
    kept as recorded. Pinned by ``tests/test_solov2.py``.
    """
    words = shlex.split(command)
    for i, word in enumerate(words):
        if word == "--out" and i + 1 < len(words):
            words[i + 1] = Path(words[i + 1]).name
        elif word.startswith("--out="):
            words[i] = "--out=" + Path(word[len("--out="):]).name
    return shlex.join(words)


def load_model(path: str | Path | None = None) -> SOLOv2:
    """The model of a checkpoint written by ``save_checkpoint`` (default: the shipped one), in eval mode."""
    path = Path(path) if path is not None else DEFAULT_CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    model = SOLOv2(SOLOv2Config.from_dict(blob["config"]))
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()})
    model.meta = blob.get("meta", {})
    return model.eval()


def train(iters: int, batch_size: int, lr: float, seed: int, cfg: SOLOv2Config | None = None,
          warmup: int = 300, progress: bool = True,
          on_save: tuple[int, Callable[[SOLOv2, int], None]] | None = None) -> tuple[SOLOv2, dict[str, Any]]:
    """Train a fresh model; returns it and a summary (losses, wall time, scenes seen).

    ``on_save = (every, fn)`` calls ``fn(model, step)`` every ``every`` steps (intermediate checkpoints).
    """
    from tqdm import tqdm

    torch.manual_seed(seed)
    model = SOLOv2(cfg)
    optimizer = make_optimizer(model, lr)
    stream = SyntheticScenes("train", iters * batch_size, seed=seed)
    start = time.perf_counter()
    smoothed: dict[str, float] = {}
    bar = tqdm(range(iters), desc="train", unit="it", disable=not progress, dynamic_ncols=True)
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, iters, lr, warmup)
        images, targets = make_batch([stream[step * batch_size + i] for i in range(batch_size)], model.cfg)
        losses = train_step(model, optimizer, images, targets)
        for k in ("loss", "loss_cls", "loss_mask"):
            smoothed[k] = losses[k] if k not in smoothed else 0.98 * smoothed[k] + 0.02 * losses[k]
        if step % 10 == 0 or step == iters - 1:
            elapsed = time.perf_counter() - start
            bar.set_postfix(loss=f"{smoothed['loss']:.3f}", cls=f"{smoothed['loss_cls']:.3f}",
                            mask=f"{smoothed['loss_mask']:.3f}", img_s=f"{(step + 1) * batch_size / elapsed:.1f}")
        if on_save is not None and (step + 1) % on_save[0] == 0 and step + 1 < iters:
            on_save[1](model, step + 1)
    summary = {"iters": iters, "batch_size": batch_size, "lr": lr, "seed": seed,
               "scenes_seen": iters * batch_size, "train_seconds": round(time.perf_counter() - start, 1),
               "final_smoothed_losses": {k: round(v, 4) for k, v in smoothed.items()}}
    return model.eval(), summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m solov2_ref.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--iters", type=int, default=4000, help="optimisation steps (default 4000)")
    parser.add_argument("--batch-size", type=int, default=8, help="scenes per step (default 8)")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak AdamW learning rate (default 2e-3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and the scene stream (default 0)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--out", type=Path, default=DEFAULT_CHECKPOINT,
                        help=f"checkpoint path (default {DEFAULT_CHECKPOINT})")
    parser.add_argument("--fp32", action="store_true", help="store float32 weights instead of float16")
    parser.add_argument("--save-every", type=int, default=0,
                        help="also save <out>.step<N>.pt every N steps (default 0: only at the end)")
    args = parser.parse_args(argv)
    for name in ("iters", "batch_size", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    torch.set_num_threads(args.threads)
    argv_used = sys.argv[1:] if argv is None else list(argv)
    command = "python -m solov2_ref.train " + shlex.join(argv_used)

    def save_intermediate(model: SOLOv2, step: int) -> None:
        save_checkpoint(model, args.out.with_suffix(f".step{step}.pt"), {"command": command, "step": step},
                        fp16=not args.fp32)

    on_save = (args.save_every, save_intermediate) if args.save_every > 0 else None
    model, summary = train(args.iters, args.batch_size, args.lr, args.seed, on_save=on_save)
    meta = {"command": command, "threads": args.threads, "torch": str(torch.__version__), **summary}
    save_checkpoint(model, args.out, meta, fp16=not args.fp32)
    print(f"saved {args.out} ({args.out.stat().st_size / 2**20:.1f} MiB) after {summary['train_seconds']:.0f} s; "
          f"smoothed losses {summary['final_smoothed_losses']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
