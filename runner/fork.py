"""Point the README's badges, Colab links and site link, and each notebook's Colab clone URL, at a fork.

python -m runner.fork               # the GitHub repository of `git remote get-url origin`
python -m runner.fork alice/mnist   # or the one named
"""

import re
import subprocess
import sys
from pathlib import Path

SLUG = r"[A-Za-z0-9-]+/[A-Za-z0-9._-]+"
BADGE = re.compile(rf"github\.com/({SLUG})/actions/workflows/")  # where the current owner/name is read
REMOTE = re.compile(rf"github\.com[:/]({SLUG}?)(?:\.git)?/?$")


def origin_slug(root: Path) -> str:
    """owner/name of the `origin` remote, if it is on GitHub."""
    url = subprocess.run(["git", "remote", "get-url", "origin"], cwd=root, capture_output=True, text=True).stdout
    match = REMOTE.search(url.strip())
    if not match:
        sys.exit(
            f"fork: origin is {url.strip() or 'not set'}, not a GitHub repository; name yours: "
            "make fork REPO=owner/name"
        )
    return match.group(1)


def point_at(root: Path, new: str) -> list[Path]:
    """Replace the repository named in the README badge by `new` in the README and the notebooks; returns the
    files changed."""
    if not re.fullmatch(SLUG, new):
        sys.exit(f"fork: {new!r} is not owner/name (e.g. alice/mnist-small-cnn)")
    readme = root / "README.md"
    old = BADGE.search(readme.read_text()).group(1)
    (old_owner, old_name), (new_owner, new_name) = old.split("/"), new.split("/")
    changed = []
    for path in [readme, *sorted((root / "notebooks").glob("*.ipynb"))]:
        text = path.read_text()
        new_text = (
            text.replace(f"github.com/{old}", f"github.com/{new}")
            .replace(f"/github/{old}/", f"/github/{new}/")
            .replace(f"{old_owner}.github.io/{old_name}/", f"{new_owner}.github.io/{new_name}/")  # the Pages site
        )
        if new_text != text:
            path.write_text(new_text)
            changed.append(path)
    print(f"{old} -> {new}: {', '.join(str(p.relative_to(root)) for p in changed) or 'nothing to change'}")
    return changed


def main(argv=None) -> list[Path]:
    argv = sys.argv[1:] if argv is None else argv
    top = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True).stdout.strip()
    if not top:
        sys.exit("fork: run it inside your clone of the repository")
    root = Path(top)
    return point_at(root, argv[0] if argv else origin_slug(root))


if __name__ == "__main__":
    main()
