# The two commands the README names: `make demo` and `make test`. Each sets up .venv when it is missing.
# `make install-user` puts `ytnotes` on your PATH with pipx (see "Use it on your notes" in the README).
PYTHON ?= python3
TORCH := torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_QUESTION ?= How did a calligraphy class end up in the Macintosh?
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test lint install install-user clean chromium

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# The CPU build of torch first: a bare `torch` requirement would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check $(TORCH)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The demo's index is ./index in the checkout (git-ignored), not your own (~/.local/share/ytnotes/index).
demo: $(STAMP)
	$(BIN)/ytnotes build --index index
	$(BIN)/ytnotes ask "$(DEMO_QUESTION)" --index index

# pipx gives the command its own virtual environment; --preinstall puts the CPU build of torch in it first, as
# `install` does (the torch that pip finds for a bare requirement would be a multi-GB CUDA build).
install-user:
	@command -v pipx >/dev/null || { echo "pipx is missing: install it first (python3 -m pip install --user pipx)"; exit 1; }
	pipx install --force --preinstall $(TORCH) .

# tests/test_browser.py drives Debian's Chromium (never a browser download). Installed here when it is missing and
# we are root (as CI is); otherwise the browser tests skip, saying why.
CHROMIUM := /usr/bin/chromium
chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "note: $(CHROMIUM) is missing; run 'apt-get install chromium' as root, or the browser tests skip"; \
	  fi; \
	fi

test: $(STAMP) chromium
	$(BIN)/ruff check search tests scripts
	$(BIN)/ruff format --check search tests scripts
	$(BIN)/mypy
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check search tests scripts
	$(BIN)/ruff format --check search tests scripts
	$(BIN)/mypy

clean:
	rm -rf $(VENV) index/CURRENT index/gen-* index/.tmp-*
