# The two commands a newcomer needs: `make demo` and `make test`. Both set up .venv when it is
# missing or stale (pyproject.toml changed) and are safe to run again.
VENV   ?= .venv
PY     := $(VENV)/bin/python
CLI    := $(VENV)/bin/hsta-bench
STAMP  := $(VENV)/.installed
PIP    := $(PY) -m pip install -q --disable-pip-version-check
# torch first, on its own: `pip install $(TORCH)` installs whichever build of it pip's configuration finds.
# On this machine that is the CPU wheel (torch 2.13.0+cpu, in the wheel folder pip's config names); elsewhere
# it is what your index serves. On a GPU machine pass the index of the CUDA wheels for your CUDA version,
# `make clean setup TORCH_INDEX=<that index>` (used for torch only; clean, as setup skips an up-to-date .venv),
# then check that torch sees the GPU (README, "On GPUs and clusters"). TORCH=torch==2.13.0+<build> pins a build.
TORCH       ?= torch==2.13.0
TORCH_INDEX ?=
# examples/my_mer_model: a model of your own as a package (README, "Your own model"), registered by its entry
# point; installed editable (--no-deps: it needs only what hsta-bench has), so the tests run it as a user would.
# facenet-pytorch only for its MTCNN weights (data/*.pt; hsta_bench/preprocess/mtcnn.py runs them, for face crops
# and HTNet's landmarks, and never imports the package), so --no-deps: its metadata pins torch<2.3, numpy<2 and
# Pillow<10.3 and pulls torchvision, none of which fit here. pip leaves it alone when it is already installed.
FACENET     ?= facenet-pytorch==2.6.0

.PHONY: setup demo test bench leaderboard clean

setup: $(STAMP)

$(STAMP): pyproject.toml examples/my_mer_model/pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) '$(TORCH)'
	$(PIP) -e '.[dev]'
	$(PIP) --no-deps '$(FACENET)'
	$(PIP) --no-deps -e examples/my_mer_model
	touch $(STAMP)

# The demo writes the synthetic stand-ins of every dataset, checks each one through the same adapters
# that read the real datasets, and runs the smoke benchmark on them (HSTA and the baselines, as Ray Tune
# trials on a local Ray instance the command starts and stops).
demo: setup
	$(CLI) datasets synth
	$(CLI) datasets list
	$(CLI) datasets check --all
	$(CLI) run --all-datasets --preset smoke --output results

# lint, format and type checks first (under a minute: pyproject.toml's [tool.ruff] and [tool.mypy]), then the suite
test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -q --durations=15

# speed goals, as ratios against a baseline measured in the same run
bench: setup
	$(PY) -m pytest -q tests/benchmarks --benchmark-enable

# the published leaderboard, regenerated from its committed results store (leaderboard/results/)
leaderboard: setup
	$(CLI) leaderboard --store leaderboard/results --output leaderboard/README.md

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks
