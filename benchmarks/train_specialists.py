"""Train the pool's specialists: small CNNs fine-tuned for one task, as on the Hub.

    nice -n 10 python benchmarks/train_specialists.py --bench-dir ../shared/bench

For every task of :data:`bench_models.SPECIALIST_TASKS` and width of
:data:`bench_models.SPECIALIST_WIDTHS`, a :class:`bench_models.SpecialistCNN` is trained from a
fixed seed on the task's SPECIALIST pool only (``tasks.task_data(...)[1]``: 30 % of each
class; every evaluation image lies outside it). Recipe: 32x32 gray in [0, 1] (the extractor's
own transform), random shifts of up to 2 px, AdamW (lr 3e-3, weight decay 5e-4), batch 32,
cosine schedule, :data:`EPOCHS` epochs, one CPU thread. The weights go to
``benchmarks/specialists/<name>.safetensors`` and the manifest (task, seed, epochs, train
accuracy, parameters, sha256) to ``benchmarks/specialists/manifest.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks import bench_models, tasks  # noqa: E402
from hf_stdembed._files import file_sha256  # noqa: E402
from hf_stdembed.data import ImageDataset  # noqa: E402

EPOCHS = 60
BATCH = 32
LR = 3e-3
WEIGHT_DECAY = 5e-4
SHIFT = 2  # random translation, pixels
RECIPE = f"AdamW lr {LR} wd {WEIGHT_DECAY}, batch {BATCH}, cosine, shift {SHIFT}px"


def pixels(ds: ImageDataset) -> torch.Tensor:
    """The images of ``ds`` through the specialists' own transform: ``(N, 1, 32, 32)``."""
    transform = bench_models.GrayTransform(32)
    return torch.stack([transform(im) for im in ds.dataset[ds.image_column]])


def shift(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image translated by up to :data:`SHIFT` px (replicate padding), seeded."""
    padded = F.pad(x, (SHIFT,) * 4, mode="replicate")
    out = torch.empty_like(x)
    offsets = torch.randint(0, 2 * SHIFT + 1, (len(x), 2), generator=generator)
    for i, (dy, dx) in enumerate(offsets.tolist()):
        out[i] = padded[i, :, dy : dy + x.shape[2], dx : dx + x.shape[3]]
    return out


def train(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, *, width: int, seed: int, epochs: int
) -> tuple[bench_models.SpecialistCNN, float]:
    """A seeded SpecialistCNN trained on ``(x, y)``; returns it (eval mode) and train acc (%)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = bench_models.SpecialistCNN(num_classes, width=width, dim=8 * width)
    optimiser = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    steps = epochs * math.ceil(len(x) / BATCH)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), BATCH):
            batch = order[start : start + BATCH]
            if len(batch) < 2:  # BatchNorm needs two rows
                continue
            loss = F.cross_entropy(model(shift(x[batch], generator)), y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
    model.eval()
    with torch.no_grad():
        accuracy = 100.0 * float((model(x).argmax(1) == y).float().mean())
    return model, accuracy


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench-dir", type=Path, default=REPO_ROOT.parent / "shared" / "bench")
    parser.add_argument("--out", type=Path, default=bench_models.SPECIALIST_DIR)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--tasks", nargs="*", default=list(bench_models.SPECIALIST_TASKS))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    manifest_path = args.out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    for task in args.tasks:
        _, pool = tasks.task_data(args.bench_dir, task)
        x, y = pixels(pool), pool.labels()
        for seed, width in enumerate(bench_models.SPECIALIST_WIDTHS):
            name = bench_models.specialist_name(task, width)
            t = time.time()
            model, accuracy = train(
                x, y, pool.num_classes, width=width, seed=seed, epochs=args.epochs
            )
            path = args.out / f"{name}.safetensors"
            state = {k: v.contiguous() for k, v in model.state_dict().items()}
            save_file(state, path, metadata={"task": task, "seed": str(seed)})
            manifest[name] = {
                "task": task,
                "trained_on": f"tasks.task_data(bench_dir, {task!r})[1] (specialist pool)",
                "train_images": len(pool),
                "num_classes": pool.num_classes,
                "width": width,
                "dim": 8 * width,
                "seed": seed,
                "epochs": args.epochs,
                "recipe": RECIPE,
                "train_accuracy": round(accuracy, 2),
                "parameters": sum(p.numel() for p in model.parameters()),
                "seconds": round(time.time() - t, 1),
                "sha256": file_sha256(path),
            }
            print(f"{name}: train acc {accuracy:.1f}% in {time.time() - t:.0f}s", file=sys.stderr)
            manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
