"""Which speed options help one training step of a model on this machine: channels_last, torch.compile, AMP.

    python -m benchmarks.step_options [--model s7|reference] [--batch-size 128] [--device auto] [--steps 100]
    python -m benchmarks.step_options --model reference --profile   # where the eager step's time goes

Times forward + backward + SGD step on one fixed batch of real training digits (random pixels make a step slower;
the data pipeline is not involved) and prints
ms/step and the ratio to plain eager mode, measured in this process; torch.compile's one-off compile time is
printed separately. The engine turns none of them on: on an H200 AMP made s7's epoch slower (benchmarks/gpu.py).
With --profile it instead prints torch.profiler's table of the eager step's operators, by self time.
"""

import time

from utils.data import make_loaders
from utils.engine import resolve_device
from utils.models import Normalize, get_model, list_models

import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import profile

from benchmarks.reference import reference_net
from runner.cli import ArgumentParser


def time_steps(model, x, y, steps, autocast_dtype=None) -> float:
    """Seconds per training step after 5 warm-up steps."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)

    def step():
        with torch.autocast(x.device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
            loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(5):
        step()
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main(argv=None) -> dict:
    parser = ArgumentParser(prog="python -m benchmarks.step_options", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="s7", choices=[*list_models(), "reference"])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--profile", action="store_true", help="print the operators' share of the eager step")
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.steps < 1:
        parser.error(f"--batch-size {args.batch_size} --steps {args.steps}: expected integers >= 1")
    try:
        device = resolve_device(args.device)
    except ValueError as err:
        parser.error(str(err))
    x, y = next(iter(make_loaders(None, args.batch_size, device, subset=args.batch_size)[0]))
    amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16

    def fresh(memory_format=torch.contiguous_format):
        torch.manual_seed(0)
        model = nn.Sequential(Normalize(), reference_net()) if args.model == "reference" else get_model(args.model)
        return model.to(device, memory_format=memory_format)

    if args.profile:
        with profile() as prof:
            time_steps(fresh(), x, y, args.steps)
        table = prof.key_averages().table(
            sort_by="self_device_time_total" if device.type == "cuda" else "self_cpu_time_total", row_limit=12
        )
        print(f"{args.model}, batch {args.batch_size}, {device}, {torch.get_num_threads()} threads\n{table}")
        return dict(profile=table)
    results = {"eager": time_steps(fresh(), x, y, args.steps)}
    results["channels_last"] = time_steps(
        fresh(torch.channels_last), x.contiguous(memory_format=torch.channels_last), y, args.steps
    )
    results[f"autocast {str(amp_dtype).removeprefix('torch.')}"] = time_steps(fresh(), x, y, args.steps, amp_dtype)
    start = time.perf_counter()
    compiled = torch.compile(fresh())
    time_steps(compiled, x, y, 1)
    compile_seconds = time.perf_counter() - start
    results["torch.compile"] = time_steps(compiled, x, y, args.steps)
    print(
        f"{args.model}, batch {args.batch_size}, {device}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    for name, seconds in results.items():
        print(f"  {name:<18} {seconds * 1e3:7.2f} ms/step   {results['eager'] / seconds:5.2f}x eager")
    print(f"  torch.compile's first steps took {compile_seconds:.0f} s (compilation)")
    return dict(ms_per_step={k: v * 1e3 for k, v in results.items()}, compile_seconds=compile_seconds)


if __name__ == "__main__":
    main()
