"""Repository hygiene: lint, the GitHub Actions workflow, the package install."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def tool(name) -> str:
    """A console script of this environment (next to its python), else from PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name) or name


def test_ruff_is_clean():
    result = subprocess.run([tool("ruff"), "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_workflow_file_is_a_valid_github_workflow():
    result = subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
                             str(ROOT / ".github" / "workflows" / "ci.yml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_broken_workflow_file_is_caught(tmp_path):
    broken = tmp_path / "ci.yml"
    broken.write_text("name: ci\non: push\njobs:\n  test:\n    steps: []\n")  # no runs-on
    result = subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(broken)],
                            capture_output=True, text=True)
    assert result.returncode != 0


def test_utils_is_installed_from_this_checkout():
    out = subprocess.run([sys.executable, "-c", "import utils; print(utils.__file__)"], cwd="/",
                         capture_output=True, text=True, check=True).stdout
    assert Path(out.strip()).parent == ROOT / "utils"
