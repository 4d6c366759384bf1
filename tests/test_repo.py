"""Repository hygiene: lint and format, pre-commit, the lock file, the GitHub Actions workflow, the package install."""

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def tool(name) -> str:
    """A console script of this environment (next to its python), else from PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name) or name


@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "."]])
def test_ruff_is_clean(command):
    result = subprocess.run([tool("ruff"), *command], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_pre_commit_config_is_valid():
    result = subprocess.run(
        [tool("pre-commit"), "validate-config", ".pre-commit-config.yaml"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_lock_pins_every_requirement_within_its_range():
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split(";")[0].strip().split("==")
            pins[canonicalize_name(name)] = Version(version)
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    runtime = [r.split("#")[0].strip() for r in lines if r.split("#")[0].strip()]
    for requirement in map(Requirement, runtime + dev):
        assert pins[canonicalize_name(requirement.name)] in requirement.specifier, requirement


def test_workflow_file_is_a_valid_github_workflow():
    result = subprocess.run(
        [
            tool("check-jsonschema"),
            "--builtin-schema",
            "vendor.github-workflows",
            str(ROOT / ".github" / "workflows" / "ci.yml"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_broken_workflow_file_is_caught(tmp_path):
    broken = tmp_path / "ci.yml"
    broken.write_text("name: ci\non: push\njobs:\n  test:\n    steps: []\n")  # no runs-on
    result = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(broken)],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0


def test_utils_is_installed_from_this_checkout():
    out = subprocess.run(
        [sys.executable, "-c", "import utils; print(utils.__file__)"],
        cwd="/",
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert Path(out.strip()).parent == ROOT / "utils"


def test_actions_data_cache_is_keyed_on_the_file_that_holds_the_md5s():
    """A changed checksum (a new dataset, a fixed file) must not restore an old data/ cache."""
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    cache = next(s for s in workflow["jobs"]["test"]["steps"] if s.get("uses", "").startswith("actions/cache"))
    keyed_on = re.findall(r"hashFiles\('([^']+)'\)", cache["with"]["key"])
    assert [f for f in keyed_on if "RAW_MD5 = {" in (ROOT / f).read_text()] == keyed_on != []


def zizmor(*paths) -> subprocess.CompletedProcess:
    """zizmor's security audits, offline, all of them (pedantic): exits 0 only when it finds nothing."""
    return subprocess.run(
        [tool("zizmor"), "--offline", "--persona", "pedantic", *map(str, paths)], capture_output=True, text=True
    )


def test_workflows_pass_the_security_linter():
    result = zizmor(*sorted((ROOT / ".github" / "workflows").glob("*.yml")))
    assert result.returncode == 0, result.stdout[-3000:]


def test_the_security_linter_catches_an_unpinned_action_and_default_permissions(tmp_path):
    workflow = (ROOT / ".github" / "workflows" / "ci.yml").read_text()
    unpinned = re.sub(r"actions/checkout@\w+", "actions/checkout@v4", workflow).replace("permissions: {}", "")
    (tmp_path / "ci.yml").write_text(unpinned)
    report = zizmor(tmp_path / "ci.yml").stdout
    assert "unpinned-uses" in report and "excessive-permissions" in report


def test_xdist_groups_keep_their_tests_on_one_worker(tmp_path):
    """make test's first half shares a fixture among the tests of an xdist_group (the graded class, the Dask
    cluster, the small 03 run): with `--dist loadgroup` each group must run on one worker, or its fixture is made
    twice (pytest 9.2 with pytest-xdist 3.8 ignored the groups)."""
    (tmp_path / "test_groups.py").write_text(
        "import os, pytest\n"
        "@pytest.mark.xdist_group('one')\n"
        "@pytest.mark.parametrize('i', range(8))\n"
        "def test_where(i):\n"
        "    print('worker', os.environ['PYTEST_XDIST_WORKER'])\n"
    )
    command = [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-rP", "-p", "no:cacheprovider"]
    done = subprocess.run([*command, str(tmp_path)], cwd=tmp_path, capture_output=True, text=True)
    workers = re.findall(r"^worker (gw\d)$", done.stdout, re.M)
    assert done.returncode == 0 and len(workers) == 8 and len(set(workers)) == 1, done.stdout[-2000:]
