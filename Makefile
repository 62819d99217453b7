# kerasguide: two commands do all set-up.  `make demo`, `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

export TF_CPP_MIN_LOG_LEVEL := 3
export QT_QPA_PLATFORM := offscreen
export PYTHONUNBUFFERED := 1

.PHONY: demo test lint bench clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,gui]"
	touch $(STAMP)

# The demo run, then its diagnosis; its monitors (update ratios, histograms,
# first-layer images) are in TensorBoard: `make demo BOARD=1` opens it.
demo: $(STAMP)
	-$(VENV)/bin/kerasguide run --out runs
	@last=$$(ls -td runs/*/ | head -1); \
	echo; echo "diagnosis of $$last:"; $(VENV)/bin/kerasguide diagnose $$last; \
	echo "monitors in TensorBoard: $(VENV)/bin/kerasguide board $$last"; \
	if [ -n "$(BOARD)" ]; then $(VENV)/bin/kerasguide board $$last; fi

# Two pytest processes: the core's tests, then the desktop app's, which never share a process with
# TensorFlow (as in the app itself; see tests/conftest.py).
test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider tests
	$(PY) -m pytest -q -p no:cacheprovider tests/gui

# Ruff, then the import contracts in pyproject.toml (the layers, one way; no Qt in the core; no
# TensorFlow in the app), checked from the repo root where lint-imports finds pyproject.toml.
lint: $(STAMP)
	$(VENV)/bin/ruff check kerasguide gui tests benchmarks
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	$(PY) benchmarks/run_speed.py

clean:
	rm -rf $(VENV) runs build *.egg-info
