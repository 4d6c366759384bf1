"""What runs and publishes the notebooks: `make run` and `make notebooks` (execute), sweeps on Dask (sweep, grid,
runs, reports), the course site (site), `make fork` (fork) and the emulated-CPU check (kinds). It imports `utils`;
`utils`, what the notebooks import, never imports it."""

from utils import numerics

numerics.apply()  # a program starts here: the portable CPU numerics, before any of its modules loads torch
