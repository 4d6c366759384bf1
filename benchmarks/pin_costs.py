"""What each of the portable numerics' pins costs (utils/numerics.py): s7's first epoch in new processes, with none
of the pins, each one alone, and all of them, in turns; its training seconds, the weights' hash (each pin alone
changes the numbers) and the ratio to none. About 2.5 minutes on 2 CPU cores.

    python -m benchmarks.pin_costs [--turns 2]
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from utils.numerics import PINS, SWITCH

REPO = Path(__file__).resolve().parents[1]
# The child keeps the environment it was started with: utils takes pins out when switched off, and torch reads them
# only at its first operation, so they are put back after the import.
CHILD = (
    "import os; env = dict(os.environ); import json; from runner.kinds import train_first_epochs; "
    "os.environ.clear(); os.environ.update(env); "
    "print(json.dumps(train_first_epochs({'device': 'cpu'}, 1, 500)))"
)


def epoch(pins: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in PINS}
    env.update({SWITCH: "0", **pins})
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, cwd=REPO, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=2)
    turns = parser.parse_args(argv).turns
    configs = {"none": {}, **{f"{k}={v}": {k: v} for k, v in PINS.items()}, "all": dict(PINS)}
    seconds = {name: [] for name in configs}
    for _ in range(turns):
        for name, pins in configs.items():
            result = epoch(pins)
            seconds[name].append(result["train_seconds"][0])
            print(f"{name}: {seconds[name][-1]:.2f} s, weights {result['weights'][:12]}", flush=True)
    base = min(seconds["none"])
    for name, values in seconds.items():
        print(f"{name:28s} fastest {min(values):.2f} s  {min(values) / base:.3f}× none")
    return seconds


if __name__ == "__main__":
    main()
