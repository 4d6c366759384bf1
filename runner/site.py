"""The course site: the committed notebooks (the evidence) and the project's pages as static HTML in site/, built
offline, and a page to draw a digit on for the committed 03 run's model. Nothing on a page loads from the network:
no CDN scripts, no remote images (badges become text links); onnxruntime-web is copied from node_modules/.

    python -m runner.site [--out site]     # make site; serve it with `python -m http.server -d site`

site/index.html is the README (what it is, the models and how reliably they meet their targets) with every
model's seeds plot; each notebook is a page with an "Open in Colab" link; RESULTS.md and the benchmarks', sweeps'
and tests' READMEs are pages too. Links between them point at the pages, not at the Markdown files. draw.html
(from web/) runs results/03_training.onnx with onnxruntime-web (package.json; `npm ci` installs it).
"""

import html
import re
import shutil
from pathlib import Path
from urllib.parse import quote

from utils.datafiles import REPO_ROOT
from utils.errors import UserError

import mistune
from jinja2 import DictLoader
from nbconvert import HTMLExporter

from .cli import ArgumentParser
from .evidence import COMMITTED_ONNX, committed_metrics
from .execute import NOTEBOOKS

PAGES = {  # Markdown file -> page
    "README.md": "index.html",
    "RESULTS.md": "results.html",
    "benchmarks/README.md": "benchmarks.html",
    "sweeps/README.md": "sweeps.html",
    "tests/README.md": "tests.html",
}
NAV = [
    ("index.html", "Home"),
    *((f"{n}.html", n) for n in NOTEBOOKS),
    ("results.html", "Results"),
    ("benchmarks.html", "Speed"),
    ("sweeps.html", "Sweeps"),
    ("tests.html", "Tests"),
    ("draw.html", "Draw a digit"),
]
ORT = REPO_ROOT / "node_modules" / "onnxruntime-web" / "dist"
ORT_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")  # what the page loads
COLAB = re.compile(r"https://colab\.research\.google\.com/github/([^/]+/[^/]+)/blob/main/notebooks/")
BODY_STYLE = "body { font: 16px/1.5 system-ui, sans-serif; margin: 0; color: #1f2328; }"
STYLE = """
nav.site { background: #24292f; padding: 0.6em 1.5em; font: 16px/1.5 system-ui, sans-serif; }
nav.site a { color: #fff; margin-right: 1.2em; text-decoration: none; font-weight: 600; }
nav.site a.colab { background: #f9ab00; color: #000; padding: 0.1em 0.6em; border-radius: 4px; }
article { max-width: 60em; margin: 1.5em auto; padding: 0 1.5em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }
th, td { border: 1px solid #d0d7de; padding: 0.3em 0.6em; vertical-align: top; }
pre { background: #f6f8fa; padding: 0.8em; overflow-x: auto; }
code { background: #f6f8fa; padding: 0.1em 0.3em; }
img { max-width: 100%; }
"""  # a notebook page keeps its own body font: BODY_STYLE is for the other pages
ICON_SVG = (  # the tab's icon, inline: without one the browser requests /favicon.ico, a 404 in its console
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#24292f"/>'
    '<text x="8" y="13" fill="#fff" font-family="sans-serif" font-size="12" text-anchor="middle">7</text></svg>'
)
ICON = f'<link rel="icon" href="data:image/svg+xml,{quote(ICON_SVG)}">'
NOTEBOOK_TEMPLATE = (
    """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block extra_css -%}<style>"""
    + STYLE
    + "</style>"
    + ICON
    + """{%- endblock extra_css -%}
{%- block body_header -%}
<body class="jp-Notebook" data-jp-theme-light="true" data-jp-theme-name="JupyterLab Light">
{{ resources.site_nav }}
<main>
{%- endblock body_header -%}
"""
)


def nav(current: str, colab: str | None = None) -> str:
    links = [f'<a href="{page}"{" aria-current=page" if page == current else ""}>{name}</a>' for page, name in NAV]
    if colab:
        links.append(f'<a class="colab" href="{colab}">Open in Colab</a>')
    return f'<nav class="site">{"".join(links)}</nav>'


def page_links(text: str, source: str) -> str:
    """Markdown links of `source` (a file of PAGES) rewritten for the site: other Markdown pages and notebooks to
    their pages, images to site-relative paths, badge images to their alt text, other repository files to
    their place on GitHub's view of the repository (the README's Colab links name it)."""
    folder = Path(source).parent
    repo = COLAB.search((REPO_ROOT / "README.md").read_text()).group(1)

    def target(link: str) -> str:
        if re.match(r"[a-z]+:|#", link):
            return link
        path = (folder / link).as_posix().removeprefix("./")
        path = re.sub(r"[^/]+/\.\./", "", path)
        if path in PAGES:
            return PAGES[path]
        if (m := re.fullmatch(r"notebooks/(\w+)\.ipynb", path)) and m.group(1) in NOTEBOOKS:
            return f"{m.group(1)}.html"
        if path.endswith(".png"):
            return path
        return f"https://github.com/{repo}/blob/main/{path}"

    text = re.sub(r"\[!\[([^\]]*)\]\([^)]*\)\]\(([^)]*)\)", r"[\1](\2)", text)  # [![badge](img)](link) -> [badge](link)
    return re.sub(r"(!?\[[^\]]*\])\(([^)\s]+)\)", lambda m: f"{m.group(1)}({target(m.group(2))})", text)


def markdown_page(source: str, out: Path, extra: str = "") -> Path:
    text = (REPO_ROOT / source).read_text()
    if source == "README.md":
        text = re.sub(r"^\[!\[ci\].*\n", "", text, flags=re.M)  # the CI badge: an image from GitHub
    body = mistune.html(page_links(text, source))
    title = html.escape(re.search(r"^# (.+)$", text, re.M).group(1))
    page = PAGES[source]
    (out / page).write_text(
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{BODY_STYLE}{STYLE}</style>{ICON}</head>"
        f"<body>{nav(page)}<article>{body}{extra}</article></body></html>\n"
    )
    return out / page


def notebook_page(name: str, out: Path, repo: str) -> Path:
    exporter = HTMLExporter(
        extra_loaders=[DictLoader({"site.html.j2": NOTEBOOK_TEMPLATE})], template_file="site.html.j2"
    )
    colab = f"https://colab.research.google.com/github/{repo}/blob/main/notebooks/{name}.ipynb"
    body, _ = exporter.from_filename(
        str(REPO_ROOT / "notebooks" / f"{name}.ipynb"), resources={"site_nav": nav(f"{name}.html", colab)}
    )
    (out / f"{name}.html").write_text(body)
    return out / f"{name}.html"


def draw_page(out: Path) -> Path:
    """web/draw.html with the site's navigation, its script and style, onnxruntime-web and the committed model."""
    missing = [name for name in ORT_FILES if not (ORT / name).exists()]
    if missing:
        raise UserError(f"{', '.join(missing)} not in {ORT}: run `npm ci` (make site does) to install onnxruntime-web")
    (out / "ort").mkdir()
    for name in ORT_FILES:
        shutil.copy(ORT / name, out / "ort" / name)
    shutil.copy(COMMITTED_ONNX, out / COMMITTED_ONNX.name)
    for name in ("draw.js", "draw.css"):
        shutil.copy(REPO_ROOT / "web" / name, out / name)
    (out / "site.css").write_text(BODY_STYLE + STYLE)
    run = committed_metrics()
    about = f"{run['model']}, {run['final_acc']:.2%} on the 10,000 test digits, trained on {run['machine']}"
    page = (REPO_ROOT / "web" / "draw.html").read_text()
    (out / "draw.html").write_text(
        page.replace("</head>", f"{ICON}</head>")
        .replace("<!-- NAV -->", nav("draw.html"))
        .replace("<!-- MODEL -->", about)
    )
    return out / "draw.html"


def build(out: Path) -> list[Path]:
    """Every page into `out` (emptied first) with the images they show; returns the pages."""
    shutil.rmtree(out, ignore_errors=True)
    (out / "results").mkdir(parents=True)
    for png in sorted((REPO_ROOT / "results").glob("*.png")):
        shutil.copy(png, out / "results" / png.name)
    repo = COLAB.search((REPO_ROOT / "README.md").read_text()).group(1)
    plots = "".join(
        f'<figure><img src="results/{p.name}" alt="{p.stem}"><figcaption>{p.stem}</figcaption></figure>'
        for p in sorted((REPO_ROOT / "results").glob("seeds-*.png"))
    )
    pages = [markdown_page("README.md", out, f"<h2>Every model on seeds 1–10</h2>{plots}")]
    pages += [markdown_page(source, out) for source in PAGES if source != "README.md"]
    pages += [notebook_page(name, out, repo) for name in NOTEBOOKS]
    pages.append(draw_page(out))
    return pages


def main(argv=None) -> list[Path]:
    parser = ArgumentParser(prog="python -m runner.site", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "site", help="default: site/ in the repository")
    try:
        pages = build(parser.parse_args(argv).out)
    except UserError as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    print(f"{len(pages)} pages in {pages[0].parent}: {', '.join(p.name for p in pages)}")
    return pages


if __name__ == "__main__":
    main()
