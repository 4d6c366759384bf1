"""The course site in a real browser: built from the committed notebooks, served on 127.0.0.1, driven by Playwright
with the system's Chromium (no browser download). Screenshots of the index, of 03 and of the draw page with a digit
drawn go to screenshots/ (kept by CI's artefact)."""

import functools
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from utils.data import load_data

import numpy as np
import onnxruntime as ort
import pytest

from runner.evidence import COMMITTED_ONNX
from runner.site import NAV, build

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "screenshots"
BROWSERS = ("chromium", "google-chrome", "google-chrome-stable")  # Debian's package; the Chrome of GitHub's runners
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run", "--disable-sync"]
FIGURES = {"01_model_design.html": 0, "02_augmentation.html": 2, "03_training.html": 3}  # PNG outputs per notebook


def browser_path() -> str:
    found = next(filter(None, map(shutil.which, BROWSERS)), None)
    if found is None:
        pytest.fail(
            f"no browser for the site test: none of {', '.join(BROWSERS)} on PATH; `make` installs "
            "Debian's chromium as root, else install Chromium or Google Chrome",
            pytrace=False,
        )
    return found


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # one line per request would bury pytest's report
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The built site served on a free loopback port; yields its base URL."""
    out = tmp_path_factory.mktemp("site")
    build(out)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(out)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path(), args=FLAGS)
        yield browser
        browser.close()


def visit(browser, url):
    """Open `url`; returns (page, its response, console errors and page errors, failed or refused requests)."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors, failed = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    response = page.goto(url, wait_until="load")
    return page, response, errors, failed


@pytest.mark.parametrize("name", [page for page, _ in NAV])
def test_every_page_loads_with_its_links_and_images(site, browser, name):
    page, response, errors, failed = visit(browser, site + name)
    assert response.status == 200
    assert errors == [] and failed == []
    # its own icon, so no browser asks for /favicon.ico; the site's font in the navigation bar on every page
    assert page.get_attribute("link[rel=icon]", "href").startswith("data:image/svg+xml,")
    assert page.eval_on_selector("nav.site a", "a => getComputedStyle(a).fontFamily") == "system-ui, sans-serif"
    local = page.eval_on_selector_all("a[href]", "as => as.map(a => a.getAttribute('href'))")
    for href in {h.split("#")[0] for h in local if not h.startswith(("http:", "https:", "#", "mailto:"))}:
        assert page.request.get(site + href).status == 200, f"{name} links to {href}, which is not there"
    images = page.eval_on_selector_all("img", "is => is.map(i => [i.src, i.complete, i.naturalWidth, i.width])")
    assert all(src.startswith((site, "data:image/")) for src, *_ in images)  # nothing from the network
    assert all(complete and natural > 0 and shown > 0 for _, complete, natural, shown in images), images
    if name in FIGURES:
        assert sum(src.startswith("data:image/png") for src, *_ in images) == FIGURES[name]
        colab = page.get_attribute("nav.site a.colab", "href")
        assert colab.endswith(f"/blob/main/notebooks/{name.replace('.html', '.ipynb')}")
    if name in ("index.html", "03_training.html"):
        SCREENSHOTS.mkdir(exist_ok=True)
        page.screenshot(path=SCREENSHOTS / name.replace(".html", ".png"), full_page=True)
    page.close()


def test_the_training_page_shows_each_epoch_once(site, browser):
    page, *_ = visit(browser, site + "03_training.html")
    text = page.inner_text("main")
    for epoch in range(1, 16):
        assert text.count(f"epoch {epoch}/15: train loss") == 1
    assert "it/s" not in text  # no progress bars in the saved notebook
    page.close()


def strokes(image) -> list[tuple[int, int, int]]:
    """A digit as a person with a mouse might paint it: one horizontal stroke (y, x from, x to) per run of bright
    pixels in each row of a 28x28 image."""
    runs = []
    for y, row in enumerate((image > 127).tolist()):
        x = 0
        while x < 28:
            if row[x]:
                start = x
                while x < 28 and row[x]:
                    x += 1
                runs.append((y, start, x - 1))
            x += 1
    return runs


def test_draw_page_predicts_what_the_onnx_model_predicts_for_its_input(site, browser, mnist_root):
    """Ten test digits (the first 0, 1, ..., 9), drawn stroke by stroke with mouse events, scaled up 10x: the page
    answers what the model answers for the input it shows, and reads at least 9 of the 10 right."""
    images, labels = load_data(mnist_root, train=False)
    session = ort.InferenceSession(str(COMMITTED_ONNX))
    page, response, errors, failed = visit(browser, site + "draw.html")
    page.evaluate("window.idle")  # the model is loaded
    box = page.locator("#pad").bounding_box()
    right = []
    for digit in range(10):
        image = images[int((labels == digit).nonzero()[0])]
        page.click("#clear")
        for y, x0, x1 in strokes(image):
            page.mouse.move(box["x"] + 10 * x0 + 5, box["y"] + 10 * y + 5)
            page.mouse.down()
            page.mouse.move(box["x"] + 10 * x1 + 5, box["y"] + 10 * y + 5, steps=2)
            page.mouse.up()
        page.evaluate("window.idle")  # every stroke read
        seen = np.array(page.evaluate("Array.from(window.modelInput)"), dtype=np.float32).reshape(1, 1, 28, 28)
        assert seen.max() == pytest.approx(1.0) and 0.05 < seen.mean() < 0.4  # a digit, not a blank or a blot
        expected = int(session.run(["logits"], {"image": seen})[0].argmax())
        shown = page.inner_text("#prediction")
        assert shown == str(expected)  # the page's answer is the model's, for the input the page shows
        right.append(expected == digit)
    assert errors == [] and failed == []
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "draw.png", full_page=True)
    assert sum(right) >= 9, f"the draw page read {sum(right)} of the 10 drawn test digits right: {right}"
    page.close()
