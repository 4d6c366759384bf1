"""What a student reads to follow one default run of 03_training: the notebook's code lines and the lines of every
`utils` function its cells call, found by tracing the cells while they run a small version of the default run.
`pytest tests/test_reading.py -s` prints the count per file."""

import inspect
import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UTILS = str(ROOT / "utils")
BUDGET = 750  # lines, notebook and functions: 806 before the one training path (2026-12-04), 748 after it
SMALL = {"subset": 320, "epochs": 4, "device": "cpu"}  # 5 batches an epoch, the last 3 epochs clean


def code_cells():
    nb = json.loads((ROOT / "notebooks" / "03_training.ipynb").read_text())
    return [c for c in nb["cells"] if c["cell_type"] == "code" and "colab-setup" not in c["metadata"].get("tags", [])]


def called_functions(cells, output_dir) -> dict:
    """The `utils` functions (code objects) the cells call, run with SMALL's parameters and `output_dir`."""
    seen = {}

    def record(frame, event, arg):
        code = frame.f_code
        if event == "call" and code.co_filename.startswith(UTILS) and code.co_flags & inspect.CO_OPTIMIZED:
            seen[(code.co_filename, code.co_firstlineno)] = code

    namespace, cwd = {"__name__": "__main__"}, os.getcwd()
    os.chdir(ROOT / "notebooks")
    try:
        for cell in cells:
            sys.setprofile(record)  # again each cell: an exporter may have reset it
            exec(compile("".join(cell["source"]), "cell", "exec"), namespace)
            if "parameters" in cell["metadata"].get("tags", []):
                namespace.update(SMALL, output_dir=str(output_dir))
    finally:
        sys.setprofile(None)
        os.chdir(cwd)
    return seen


def lines_read(codes) -> dict[str, int]:
    """Non-blank source lines per file of the functions called; a function inside another one counted once, and
    comprehensions as part of their function."""
    spans = {}
    for code in codes.values():
        if code.co_name in ("<listcomp>", "<genexpr>", "<dictcomp>", "<setcomp>"):
            continue
        source, first = inspect.getsourcelines(code)
        spans[(code.co_filename, first, first + len(source) - 1)] = sum(1 for line in source if line.strip())
    per_file = {}
    for (path, first, last), n in spans.items():
        inside = any(p == path and (a, b) != (first, last) and a <= first and last <= b for p, a, b in spans)
        if not inside:
            per_file[Path(path).name] = per_file.get(Path(path).name, 0) + n
    return per_file


@pytest.mark.slow
def test_one_default_run_reads_within_its_budget(tmp_path, mnist_root):
    cells = code_cells()
    code = [line.strip() for c in cells for line in "".join(c["source"]).splitlines()]
    notebook = sum(1 for line in code if line and not line.startswith("#"))
    per_file = lines_read(called_functions(cells, tmp_path))
    total = notebook + sum(per_file.values())
    print(f"\n03_training: {notebook} code lines; called in utils: {per_file}; in all {total}")
    assert "engine.py" in per_file and "data.py" in per_file  # the trace saw the training
    assert total <= BUDGET, f"a default run now reads {total} lines (budget {BUDGET}): {per_file}"
