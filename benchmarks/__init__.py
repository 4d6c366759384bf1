"""The speed benchmarks: programs, each run as `python -m benchmarks.NAME` (benchmarks/README.md)."""

from utils import numerics

numerics.apply()  # a program starts here: the portable CPU numerics, before any of its modules loads torch
