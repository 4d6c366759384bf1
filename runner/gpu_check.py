"""The GPU check: 03_training on a CUDA GPU for a few epochs, then its speed and accuracy.

python -m runner.gpu_check [--epochs 3]   # make gpu; without a CUDA GPU it says so in one line and ends
"""

import json
import statistics

from utils.config import make_output_dir

import torch

from .cli import ArgumentParser
from .execute import execute


def main(argv=None) -> dict | None:
    parser = ArgumentParser(prog="python -m runner.gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs of s7's recipe (default 3)")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs {args.epochs}: expected an integer >= 1")
    if not torch.cuda.is_available():
        print("gpu check skipped: no CUDA GPU here (torch.cuda.is_available() is False)")
        return None
    out = make_output_dir(prefix="gpu-")
    execute("03_training", out / "03_training.ipynb", dict(device="cuda", epochs=args.epochs, output_dir=str(out)),
            echo=True)  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    seconds = statistics.median(h["train_seconds"] for h in metrics["history"])
    accuracy = " ".join(f"{100 * h['eval_acc']:.2f}" for h in metrics["history"])
    print(f"\n{metrics['machine']}: {seconds:.2f} s per training epoch (median of {args.epochs}), "
          f"{60_000 / seconds:,.0f} images/s; test accuracy per epoch (%): {accuracy}; files in {out}")  # fmt: skip
    return metrics


if __name__ == "__main__":
    main()
