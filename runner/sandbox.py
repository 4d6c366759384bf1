"""Untrusted code (a student's notebook and utils) run under bubblewrap, the sandbox Flatpak uses: no network, a new
process tree, and a file system of the system's programs and this Python read-only, one folder writable, and
nothing else (no home, no other student); limits on wall time, CPU time and memory; every process ended after."""

import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SYSTEM = ("/usr", "/etc/ld.so.cache", "/etc/localtime", "/etc/passwd", "/etc/group", "/etc/hosts", "/etc/nsswitch.conf")
USR_LINKS = ("bin", "sbin", "lib", "lib64")  # /bin -> usr/bin on a merged-/usr system (Debian 12, Ubuntu 22.04)
FIX = "install Debian's or Ubuntu's bubblewrap (`apt-get install bubblewrap`)"


@dataclass(frozen=True)
class Limits:
    wall_seconds: float = 1800.0  # the whole run, kernel start to the last cell
    cpu_seconds: int = 5400  # per process of the run, all its threads
    memory_bytes: int = 8 << 30  # address space per process (torch's CUDA build maps about 3 GiB at import)


@dataclass(frozen=True)
class Ended:
    """How a sandboxed command ended: its exit status (negative: the signal that killed it), whether the wall-time
    limit ended it, and its seconds."""

    returncode: int
    timed_out: bool
    seconds: float


def why_not() -> str | None:
    """Why no sandbox can run here (None when it can): bwrap missing, or not allowed to make namespaces."""
    if shutil.which("bwrap") is None:
        return f"no bwrap on PATH: {FIX}"
    probe = subprocess.run(command(["/bin/true"], Path("/tmp")), capture_output=True, text=True)
    if probe.returncode != 0:
        return f"bwrap cannot make a sandbox here ({probe.stderr.strip() or probe.returncode}): run as root, or {FIX}"
    return None


def command(argv: list[str], writable: Path, readable: dict | None = None, cwd: Path | None = None) -> list[str]:
    """bwrap's command line for `argv`: the system and this Python read-only, `writable` read-write, each
    `readable` source folder read-only at its destination, a fresh /tmp, /proc and /dev; no network (a loopback of
    its own), no other process visible, all of them ended with bwrap."""
    pythons = sorted({str(Path(p).resolve()) for p in (sys.prefix, sys.base_prefix)})
    args = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--uid", "65534", "--gid", "65534"]
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]  # first: a Python or venv in /tmp stays seen
    for path in (*SYSTEM, *pythons):
        if os.path.exists(path):
            args += ["--ro-bind", path, path]
    for link in USR_LINKS:
        if os.path.islink(f"/{link}"):
            args += ["--symlink", os.readlink(f"/{link}"), f"/{link}"]
    args += ["--bind", str(writable), str(writable)]
    for source, destination in (readable or {}).items():
        args += ["--ro-bind", str(source), str(destination)]
    return [*args, "--chdir", str(cwd or writable), "--", *argv]


def run(
    argv: list[str],
    writable: Path,
    log: Path,
    env: dict,
    limits: Limits,
    readable: dict | None = None,
    cwd: Path | None = None,
    sandbox: bool = True,
) -> Ended:
    """Run `argv` in the sandbox (without it when `sandbox` is False: the teacher said so) with `env` only, its
    output into `log`, under `limits`; past the wall time, every process of the run is killed."""

    def limit():  # in the child, before bwrap starts: inherited by every process of the run
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    full = command(argv, writable, readable, cwd) if sandbox else argv
    start = time.monotonic()
    with open(log, "wb") as out:
        process = subprocess.Popen(
            full,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd or writable,
            preexec_fn=limit,
            start_new_session=True,
        )
        try:
            process.wait(timeout=limits.wall_seconds)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:  # bwrap's children die with it; without the sandbox, its session's processes are killed
            with_group = process.poll() is None or not sandbox
            if with_group:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            process.wait()
    return Ended(process.returncode, timed_out, time.monotonic() - start)
