"""Portable CPU numerics: the settings under which a seeded training gives the same numbers, to the bit, on any
x86-64 CPU with AVX2, Intel or AMD, with or without AVX-512. They must be in the environment before torch loads:
`apply()` puts them there, and whoever starts a run calls it first (the notebooks in their first cell, the
`runner` and `benchmarks` programs as they start, the tests' conftest; processes started from there inherit them).
Importing this module changes nothing. `PORTABLE_NUMERICS=0` switches them off: faster on an AVX-512 CPU, but the
numbers then depend on the CPU model, and `machine_kind` names it. tests/README.md shows the check on emulated
CPUs."""

import os
import platform
import subprocess
import sys

SWITCH = "PORTABLE_NUMERICS"
PINS = {
    "ATEN_CPU_CAPABILITY": "avx2",  # torch's own kernels (BatchNorm, pooling, element-wise): AVX2 even with AVX-512
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # convolutions (oneDNN): AVX2 even with AVX-512
    "MKL_CBWR": "COMPATIBLE",  # matrix products, exp (MKL): one code path on Intel and AMD, not one per vendor
}
THREADS = "2"  # another thread count sums in another order; set OMP_NUM_THREADS yourself to choose another
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
X86_64 = platform.machine().lower() in ("x86_64", "amd64")


def wanted() -> bool:
    return os.environ.get(SWITCH, "1") != "0"


def pinned() -> bool:
    return all(os.environ.get(k) == v for k, v in PINS.items())


def apply() -> None:
    """Put the pins in the environment, unless not on x86-64 or too late (torch already loaded: `problem` then says
    so); switched off, take out those it would set (a process started by one that pins inherits them). Threads:
    `THREADS` unless a thread variable is set."""
    global LATE
    LATE = LATE or ("torch" in sys.modules and not pinned())
    if not wanted():
        for name, value in PINS.items():
            if os.environ.get(name) == value:
                del os.environ[name]
    elif X86_64 and not LATE:
        os.environ.update(PINS)
        if not any(v in os.environ for v in THREAD_VARIABLES):
            os.environ.update(dict.fromkeys(THREAD_VARIABLES, THREADS))


def problem(cpu_capability: str) -> str | None:
    """Why this process's CPU numerics are not the portable ones (None when they are), given the instruction set
    torch's kernels use (`torch.backends.cpu.get_cpu_capability()`)."""
    if not wanted():
        return f"{SWITCH}=0"
    if not X86_64:
        return f"not x86-64 ({platform.machine()})"
    if LATE:
        return "torch was imported before utils.numerics.apply()"
    if not pinned():
        return "utils.numerics.apply() was not called before torch was imported"
    if cpu_capability != "AVX2":
        return f"the CPU has no AVX2 (torch's kernels: {cpu_capability})"
    return None


def cpu_name() -> str:
    """The CPU's vendor and model: Linux's /proc/cpuinfo, macOS's sysctl, else what the platform module knows."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    if "model name" in fields:  # x86: "GenuineIntel 6/167 Intel(R) Xeon(R) Processor": the numbers tell models apart
        vendor = f"{fields.get('vendor_id', '')} {fields.get('cpu family', '?')}/{fields.get('model', '?')} "
        return vendor.lstrip() + fields["model name"]
    if "CPU implementer" in fields:  # aarch64 Linux
        return f"{platform.machine()} implementer {fields['CPU implementer']} part {fields.get('CPU part', '?')}"
    if platform.system() == "Darwin":  # "Apple M2"
        brand = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True)
        return brand.stdout.strip() or platform.machine()
    return platform.processor() or platform.machine()


LATE = False  # set by `apply` when torch had loaded before it: too late for the pins
