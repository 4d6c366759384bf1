"""What a committed 03_training claims, read as its reader sees it: the parameters it ran with, the machine kind its
"runs on" line names, and the outputs of the cells nbval checks; and the first place a re-run says otherwise."""

import re

from utils.datafiles import REPO_ROOT

from nbval.plugin import get_sanitize_patterns

SANITIZE = REPO_ROOT / "tests" / "nbval_sanitize.cfg"  # the teacher's copy: a student's could sanitize anything
CHECKED = "NBVAL_CHECK_OUTPUT"  # nbval --nbval-lax compares the cells marked with it
NOT_OURS = ("output_dir", "data_dir", "resume")  # paths on the student's machine: the grader sets its own
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
EPOCH = re.compile(r"^epoch (\d+)/(\d+):")


def visible_text(cell) -> str:
    """A code cell's outputs as a reader sees them: stdout and results as text, each line as it stands after its
    carriage-return redraws (progress bars), without colour codes; stderr (warnings, bars) and images left out."""

    def joined(text) -> str:  # a notebook file keeps a multi-line text as a list of lines
        return "".join(text) if isinstance(text, list) else str(text)

    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream" and out.get("name") == "stdout":
            parts.append(joined(out.get("text", "")))
        elif out.get("output_type") == "execute_result":
            parts.append(joined(out.get("data", {}).get("text/plain", "")) + "\n")
        elif out.get("output_type") == "error":
            parts.append(f"{out.get('ename')}: {out.get('evalue')}\n")
    text = ANSI.sub("", "".join(parts))
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))


def sanitized(text: str) -> list[str]:
    """`text` with what changes from run to run replaced as nbval's sanitizer does (the seconds), as lines."""
    for regex, replace in get_sanitize_patterns(SANITIZE.read_text()):
        text = re.sub(regex, replace, text)
    return [line for line in text.split("\n") if line.strip()]


def code_cells(nb) -> list:
    return [c for c in nb["cells"] if c.get("cell_type") == "code"]


def checked_cells(nb) -> list:
    return [c for c in code_cells(nb) if CHECKED in "".join(c.get("source", ""))]


def executed(nb) -> bool:
    return any(c.get("outputs") for c in code_cells(nb))


def runs_on(nb) -> str | None:
    """The machine kind the run's "runs on" line names (None if it printed none)."""
    for cell in code_cells(nb):
        for line in visible_text(cell).split("\n"):
            if line.startswith("runs on "):
                return line.removeprefix("runs on ").strip()
    return None


def parameter_count(nb) -> tuple[str | None, int | None]:
    """The model and parameter count a run printed ("s7: 7,578 parameters"), or (None, None)."""
    for cell in code_cells(nb or {"cells": []}):
        if found := re.search(r"^(\w+): ([\d,]+) parameters$", visible_text(cell), re.M):
            return found.group(1), int(found.group(2).replace(",", ""))
    return None, None


def threads(kind: str | None) -> int:
    """The thread count a "runs on" line names (2, the pinned count, where it names none)."""
    found = re.search(r"(\d+) threads?\b", kind or "")
    return int(found.group(1)) if found else 2


def parameters(nb) -> dict:
    """The parameters papermill gave the run, as its injected-parameters cell holds them (none for a run by hand,
    whose parameters cell holds them: a notebook re-run in Jupyter keeps papermill's old record but not its cell),
    without the paths that only meant something on the student's machine."""
    if not any("injected-parameters" in c.get("metadata", {}).get("tags", []) for c in code_cells(nb)):
        return {}
    recorded = nb.get("metadata", {}).get("papermill", {}).get("parameters", {}) or {}
    return {k: v for k, v in recorded.items() if k not in NOT_OURS}


def cell_name(cell, index: int) -> str:
    count = cell.get("execution_count")
    return f"cell [{count}]" if count else f"code cell {index + 1}"


def first_difference(committed, rerun) -> str | None:
    """Where the re-run's checked outputs first differ from the committed ones (None: nowhere): the cell, the epoch
    and the first differing value, committed and re-run."""
    mine, theirs = checked_cells(committed), checked_cells(rerun)
    if not any(EPOCH.match(line) for c in mine for line in sanitized(visible_text(c))):
        return f"no cell that prints the epoch lines is marked {CHECKED}: nothing to compare"
    if len(mine) != len(theirs):
        return f"{len(mine)} checked cells committed, {len(theirs)} in the re-run"
    for index, (a, b) in enumerate(zip(mine, theirs, strict=True)):
        old, new = sanitized(visible_text(a)), sanitized(visible_text(b))
        for n in range(max(len(old), len(new))):
            line_a = old[n] if n < len(old) else "(nothing)"
            line_b = new[n] if n < len(new) else "(nothing)"
            if line_a != line_b:
                return f"{cell_name(a, index)}, {difference(line_a, line_b)}"
    return None


def difference(committed: str, rerun: str) -> str:
    """Two lines' first differing word, named by its label: 'epoch 3/3, test acc: committed 99.44%, re-run
    99.40%'."""
    a, b = committed.split(), rerun.split()
    n = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    epoch = EPOCH.match(committed) or EPOCH.match(rerun)
    start = max([i + 1 for i, w in enumerate(a[:n]) if w == "|" or (epoch and i == 1)], default=0)
    segment = a[start:n]
    label = " ".join(dict.fromkeys(segment[:1] + segment[-1:])).rstrip(":")
    where = f"epoch {epoch.group(1)}/{epoch.group(2)}, " if epoch else ""
    shown_a = a[n] if n < len(a) else "(line ends)"
    shown_b = b[n] if n < len(b) else "(line ends)"
    return f"{where}{label + ': ' if label else ''}committed {shown_a}, re-run {shown_b}"
