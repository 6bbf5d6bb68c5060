# The two commands the README names: `make demo` and `make test`. Each sets up .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_QUESTION ?= How did a calligraphy class end up in the Macintosh?
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test lint install clean chromium

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# The CPU build of torch first: a bare `torch` requirement would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/ytnotes build
	$(BIN)/ytnotes ask "$(DEMO_QUESTION)"

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
	$(BIN)/mypy
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check search tests scripts
	$(BIN)/ruff format --check search tests scripts
	$(BIN)/mypy

clean:
	rm -rf $(VENV) index/CURRENT index/gen-* index/.tmp-*
