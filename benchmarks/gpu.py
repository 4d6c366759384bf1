"""On a CUDA GPU: s7's training speed against this machine's CPU in one process, where a step's time goes, several
models trained as one, and whether a seeded run repeats.

    python -m benchmarks.gpu [--out benchmarks/results]   # about 3 min on one GPU; one line without a GPU

Each figure is measured here, in this process: (1) s7's recipe through `fit`, as 03_training trains it, on the GPU
with mixed precision and without, and on the CPU at the pinned 2 threads and at every core (images/s of the second
epoch: the first includes cuDNN's warm-up); (2) one epoch split into the loader alone, the loader with its
augmentation, and the training step alone on one fixed batch; (3) N copies of s7 trained as one model whose
convolutions are grouped (`GroupedModels`: each copy sees its own images, exactly as N separate models would),
images/s of all copies together; (4) the same seeded run twice: the same numbers or not.
-> benchmarks/results/gpu.{md,json}
"""

import copy
import os
import time
from pathlib import Path

from utils.config import TrainParams
from utils.data import Augment, make_loaders
from utils.engine import build, fit, machine_kind, make_optimizer, train_step
from utils.files import atomic_write, write_json
from utils.models import get_model, recipe

import torch
import torch.nn.functional as F
from torch import nn

from runner.cli import ArgumentParser

RESULTS = Path(__file__).resolve().parent / "results"
RECIPE = recipe("s7")
BATCH = RECIPE["batch_size"]


def recipe_run(device, subset, epochs=2, amp=True, seed=1) -> list[dict]:
    """s7's recipe on the first `subset` training images for `epochs` epochs (none of them clean), as 03_training
    trains it."""
    p = TrainParams(**{**RECIPE, "epochs": epochs, "clean_epochs": 0, "amp": amp, "seed": seed, "subset": subset})
    return fit(build(p, device))


def images_per_second(device, subset, amp=True, threads=None) -> float:
    """Training images per second of s7's recipe in its second epoch (at `threads` CPU threads if given)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        return subset / recipe_run(device, subset, amp=amp)[-1]["train_seconds"]
    finally:
        torch.set_num_threads(before)


def seconds_per_batch(device, batches=200) -> dict:
    """Where one batch's time goes: the loader alone, the loader with the recipe's augmentation, `train_step` alone on
    one fixed batch (with `amp`: float16 mixed precision)."""
    augment = Augment(RECIPE["rotation"], RECIPE["translate"], erase=RECIPE["erase"])
    train, _ = make_loaders(None, BATCH, device, augment, 1, BATCH * batches)

    def timed(work):
        work()  # warm-up
        torch.cuda.synchronize()
        start = time.perf_counter()
        work()
        torch.cuda.synchronize()
        return (time.perf_counter() - start) / batches

    def loader(on):
        with train.augmented(on):
            for _ in train:
                pass

    model = get_model("s7").to(device)
    optimizer = make_optimizer(model, TrainParams(**RECIPE))  # SGD as the recipe has it
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    scaler = torch.amp.GradScaler("cuda")
    ema = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(0.999))
    x, y = next(iter(train))

    def steps():
        for _ in range(batches):
            train_step(model, x, y, optimizer, scheduler, scaler, ema_model=ema)

    return {"loader": timed(lambda: loader(False)), "loader + augmentation": timed(lambda: loader(True)),
            "train_step": timed(steps)}  # fmt: skip


class GroupedModels(nn.Module):
    """N copies of an s7-shaped model as one: each convolution grouped by copy, each BatchNorm over the copies'
    channels side by side, the final linear layer a grouped 1x1 convolution. Input (B, N, 28, 28), one image per
    copy in each row; output (B, N, 10). Copy i computes what `models[i]` computes, and is trained alone by the sum
    of the copies' losses (no weight is shared)."""

    def __init__(self, models):
        super().__init__()
        n, layers = len(models), []
        for parts in zip(*models, strict=True):
            first = parts[0]
            if isinstance(first, nn.Conv2d):
                layer = nn.Conv2d(n * first.in_channels, n * first.out_channels, first.kernel_size,
                                  padding=first.padding, groups=n, bias=False)  # fmt: skip
                layer.weight.data = torch.cat([p.weight.data for p in parts])
            elif isinstance(first, nn.BatchNorm2d):
                layer = nn.BatchNorm2d(n * first.num_features, momentum=first.momentum)
                for name in ("weight", "bias", "running_mean", "running_var"):
                    getattr(layer, name).data = torch.cat([getattr(p, name).data for p in parts])
            elif isinstance(first, nn.Linear):
                layer = nn.Conv2d(n * first.in_features, n * first.out_features, 1, groups=n)
                layer.weight.data = torch.cat([p.weight.data for p in parts])[:, :, None, None]
                layer.bias.data = torch.cat([p.bias.data for p in parts])
            elif isinstance(first, nn.Flatten):
                layer = nn.Flatten()
            elif isinstance(first, nn.Sequential):
                layer = GroupedModels(parts).layers
            else:  # Normalize (shared constants), pooling, ReLU, dropout: per channel already
                layer = copy.deepcopy(first)
            layers.append(layer)
        self.n, self.layers = n, nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x).view(len(x), self.n, -1)


def grouped_layers(model: nn.Sequential) -> nn.Sequential:
    """s7's layers reordered so that the classifier's Linear acts before Flatten (as a 1x1 conv it needs H, W)."""
    *body, flatten, linear = model
    return nn.Sequential(*body, linear, flatten)


def grouped(models) -> GroupedModels:
    return GroupedModels([grouped_layers(m) for m in models])


def grouped_images_per_second(device, n, steps=100) -> float:
    """Images/s of all copies together, N copies of s7 trained as one (mixed precision, SGD, EMA, the recipe's
    augmentation), each copy on its own random batch of 64 digits."""
    torch.manual_seed(0)
    train = make_loaders(None, BATCH, device)[0]
    images, labels = train.images, train.labels
    model = grouped([get_model("s7") for _ in range(n)]).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    scaler = torch.amp.GradScaler("cuda")
    ema = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(0.999))
    augment, generator = Augment(RECIPE["rotation"], RECIPE["translate"]), torch.Generator().manual_seed(0)

    def step():
        idx = torch.randint(len(labels), (n, BATCH), device=device)
        x = augment(images[idx.flatten()].float().div_(255), generator).view(n, BATCH, 28, 28).transpose(0, 1)
        y = labels[idx].T  # (B, N)
        with torch.autocast("cuda", dtype=torch.float16):
            loss = F.cross_entropy(model(x).flatten(0, 1).float(), y.flatten()) * n  # each copy: its own mean loss
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        ema.update_parameters(model)

    for _ in range(10):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return n * BATCH * steps / (time.perf_counter() - start)


def repeats(device, subset) -> dict:
    """The same seeded run twice on `device`: do the per-epoch numbers repeat to the bit? Then again with cuDNN's
    deterministic algorithms."""
    found = {}
    for name, deterministic in (("default", False), ("cudnn.deterministic", True)):
        torch.backends.cudnn.deterministic = deterministic
        a, b = (recipe_run(device, subset, epochs=2) for _ in range(2))
        keys = [k for k in a[0] if not k.endswith("seconds")]
        found[name] = all(x[k] == y[k] for x, y in zip(a, b, strict=True) for k in keys)
    torch.backends.cudnn.deterministic = False
    return found


def markdown(result) -> str:
    s = result["images_per_second"]
    gpu = s["cuda, mixed precision"]
    lines = [f"GPU benchmark, {result['date']}: {result['machine']}; CPU: {result['cpu']}.", "",
             "| s7's recipe, second epoch | images/s | vs the GPU, mixed precision |", "|---|---:|---:|"]  # fmt: skip
    lines += [f"| {k} | {v:,.0f} | {v / gpu:.2f}× |" for k, v in s.items()]
    b = result["seconds_per_batch"]
    lines += ["", "| one batch of 64 on the GPU | ms |", "|---|---:|"]
    lines += [f"| {k} | {1e3 * v:.2f} |" for k, v in b.items()]
    g = result["grouped"]
    lines += ["", "| s7 copies trained as one model (grouped convolutions) | images/s, all copies | vs one copy |",
              "|---:|---:|---:|"]  # fmt: skip
    lines += [f"| {n} | {v:,.0f} | {v / g['1']:.1f}× |" for n, v in g.items()]
    r = result["repeats"]
    lines += ["", "The same seeded run twice on the GPU, per-epoch numbers to the bit: "
              + "; ".join(f"{k}: {'the same' if v else 'different'}" for k, v in r.items())]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict | None:
    parser = ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for gpu.json and gpu.md")
    parser.add_argument("--copies", type=int, nargs="+", default=[1, 4, 16, 64], help="copies trained as one")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu benchmark skipped: no CUDA GPU here (torch.cuda.is_available() is False)")
        return None
    from utils.numerics import cpu_name

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    cores = os.cpu_count() or 1
    speeds = {
        "cuda, mixed precision": images_per_second(cuda, 64 * 300),
        "cuda, float32": images_per_second(cuda, 64 * 300, amp=False),
        f"cpu, {torch.get_num_threads()} threads": images_per_second(cpu, 64 * 100),
        f"cpu, {cores} threads": images_per_second(cpu, 64 * 100, threads=cores),
    }
    print(speeds, flush=True)
    result = dict(
        date=time.strftime("%Y-%m-%d"), machine=machine_kind(cuda), cpu=cpu_name(), images_per_second=speeds,
        seconds_per_batch=seconds_per_batch(cuda),
    )  # fmt: skip
    print(result["seconds_per_batch"], flush=True)
    result["grouped"] = {str(n): grouped_images_per_second(cuda, n) for n in args.copies}
    print(result["grouped"], flush=True)
    result["repeats"] = repeats(cuda, 64 * 100)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "gpu.json", result)
    atomic_write(args.out / "gpu.md", lambda p: p.write_text(markdown(result)))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
