# The two commands of the README: `make demo` (main job) and `make test` (what CI runs).
# Both set up .venv on their own; see tools/setup_env.sh for how torch is chosen.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
# One torch/BLAS thread per process in tests: two threads on a busy 2-core box made a GRPO step 50x slower.
TEST_ENV := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 VR1_THREADS=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

.PHONY: install test demo check-clean nbtest pytest readme docs docs-test clean

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
