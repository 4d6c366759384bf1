"""make fork on a temporary clone with a made-up remote: every badge and Colab URL follows, nothing else."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = [
    "README.md",
    "notebooks/01_model_design.ipynb",
    "notebooks/02_augmentation.ipynb",
    "notebooks/03_training.ipynb",
]


def fork(clone, *args):
    return subprocess.run([sys.executable, "-m", "runner.fork", *args], cwd=clone, capture_output=True, text=True)


def git(clone, *args):
    return subprocess.run(["git", *args], cwd=clone, capture_output=True, text=True, check=True).stdout


def test_fork_rewrites_badges_and_colab_urls_from_origin_then_from_an_argument(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    for name in [*FILES, *(p.relative_to(ROOT) for p in (ROOT / "runner").glob("*.py"))]:  # this checkout's
        (clone / name).parent.mkdir(exist_ok=True)  # versions, committed or not
        (clone / name).write_text((ROOT / name).read_text())
    git(clone, "commit", "-qam", "as in the checkout", "--allow-empty", "--author", "t <t@t>")
    old = sum((clone / name).read_text().count("OWNER/REPO") for name in FILES)
    git(clone, "remote", "set-url", "origin", "git@github.com:alice/mnist-course.git")

    result = fork(clone)
    assert result.returncode == 0, result.stderr
    assert "OWNER/REPO -> alice/mnist-course" in result.stdout
    assert sorted(git(clone, "diff", "--name-only").split()) == sorted(FILES)
    assert sum((clone / name).read_text().count("alice/mnist-course") for name in FILES) == old >= 7
    readme = (clone / "README.md").read_text()
    assert "colab.research.google.com/github/alice/mnist-course/blob/main/notebooks/03_training.ipynb" in readme
    assert "https://alice.github.io/mnist-course/" in readme and "OWNER" not in readme
    cells = json.loads((clone / "notebooks/03_training.ipynb").read_text())["cells"]
    assert 'REPO_URL = "https://github.com/alice/mnist-course"' in "".join(cells[1]["source"])

    assert fork(clone, "bob/course2").returncode == 0
    assert sum((clone / name).read_text().count("bob/course2") for name in FILES) == old


def test_fork_refuses_a_remote_that_is_not_github_and_a_bad_name(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    git(clone, "remote", "set-url", "origin", "https://gitlab.example/alice/x.git")
    result = fork(clone)
    assert result.returncode == 1 and result.stderr.strip().splitlines() == [
        "fork: origin is https://gitlab.example/alice/x.git, not a GitHub repository; name yours: "
        "make fork REPO=owner/name"
    ]
    result = fork(clone, "not a slug")
    assert result.returncode == 1 and "is not owner/name" in result.stderr
    assert git(clone, "status", "--porcelain") == ""
