# The two commands of the README: `make demo` (main job) and `make test` (what CI runs).
# Both set up .venv on their own; see tools/setup_env.sh for how torch is chosen.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
# One torch/BLAS thread per process in tests: two threads on a busy 2-core box made a GRPO step 50x slower.
TEST_ENV := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 VR1_THREADS=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

.PHONY: install test demo check-clean nbtest pytest readme docs docs-test test-torchvision clean

install:
	@bash tools/setup_env.sh

# nbdev-export/nbdev-clean must not change anything that is committed
check-clean: install
	$(BIN)/nbdev-export
	$(BIN)/nbdev-clean
	$(BIN)/python tools/make_readme.py --check
	@if [ -n "$$(git status --porcelain -- vr1_nb nbs)" ]; then \
	  echo "nbdev-export/nbdev-clean changed files: export and clean the notebooks, then commit"; \
	  git status --porcelain -- vr1_nb nbs; exit 1; fi

nbtest: install
	$(TEST_ENV) $(BIN)/nbdev-test --n-workers 2 --timing

pytest: install
	$(TEST_ENV) $(BIN)/pytest -q tests

test: check-clean nbtest pytest docs-test

demo: install
	$(BIN)/vr1 demo $(if $(PRESET),--preset $(PRESET),) $(if $(OUT),--out $(OUT),)

# README.md from nbs/index.ipynb without Quarto (nbdev-readme needs Quarto)
readme: install
	$(BIN)/python tools/make_readme.py

# The docs site without Quarto (tools/build_docs.py): each notebook executes once into _build/executed (reused while
# it and the library are unchanged), then mkdocs renders _docs_site/ (open _docs_site/index.html).
docs: install
	$(TEST_ENV) $(BIN)/python tools/build_docs.py --n-workers 2

# The docs site in headless Chromium (Debian's, installed where missing): every page loads without console errors,
# the sidebar reaches every page, a plot renders; screenshot in _docs_site/screenshot-index.png. Last step of `make test`.
docs-test:
	bash tools/ensure_chromium.sh
	$(TEST_ENV) VR1_DOCS_TEST=1 $(BIN)/pytest -q tests/test_docs.py

# The processor path GPU users have (transformers' torchvision image processors), checked on CPU in a second environment:
# torch 2.14.1 + torchvision 0.29.1 (a CUDA build that runs on CPU, ~5.6 GB; PyPI's torchvision does not import beside
# .venv's CPU torch 2.13). The fast and fallback processors must agree, and every GPU preset's trainers build and step
# with the torchvision processor. Not part of `make test` (the environment alone takes minutes to install).
TV_VENV ?= .venv-tv
test-torchvision:
	test -x $(TV_VENV)/bin/python || (python3 -m venv $(TV_VENV) && $(TV_VENV)/bin/pip install torch==2.14.1 torchvision==0.29.1)
	$(TV_VENV)/bin/pip install -q -e . pytest
	$(TEST_ENV) $(TV_VENV)/bin/python -m pytest -q tests/test_torchvision_path.py
	for p in vision-r1-7b openvlthinker-7b othink-mr1-2b; do $(TEST_ENV) $(TV_VENV)/bin/vr1 presets check $$p --steps 1 | tail -1 || exit 1; done
