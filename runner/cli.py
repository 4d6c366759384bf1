"""What the commands share: an argument parser whose errors are one line (no usage block), and `environment`, changes
to this process's environment that last for a block only."""

import argparse
import contextlib
import os


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


@contextlib.contextmanager
def environment(**changes: str):
    """Within the block, `changes` are in os.environ, which the processes started there inherit (a papermill kernel
    has no environment of its own); after it, os.environ is as before, whatever was set in between (Dask's nannies
    set OMP_NUM_THREADS, MALLOC_TRIM_THRESHOLD_ and PYTHONHASHSEED in the process that starts them)."""
    before = dict(os.environ)
    os.environ.update(changes)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(before)
