# kerasguide: two commands do all set-up.  `make demo`, `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

export TF_CPP_MIN_LOG_LEVEL := 3
export QT_QPA_PLATFORM := offscreen
export PYTHONUNBUFFERED := 1

.PHONY: demo test lint bench clean venv headless

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

# Two pytest runs: the core's tests (its slowest 25 listed, to keep the suite's time in sight),
# then the desktop app's, which never share a process with TensorFlow (as in the app itself; see
# tests/conftest.py). The core's run on TEST_WORKERS pytest-xdist workers, a test file each at a
# time (its module fixtures and order kept): most of its time is child processes starting and
# waiting, so two workers on 2 cores take about 0.6x the time of one (benchmarks/README.md).
TEST_WORKERS ?= 2
test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile --durations=25 tests
	$(PY) -m pytest -q -p no:cacheprovider tests/gui

# Ruff, then the import contracts in pyproject.toml (the layers, one way; no Qt in the core; no
# TensorFlow in the app), checked from the repo root where lint-imports finds pyproject.toml.
lint: $(STAMP)
	$(VENV)/bin/ruff check kerasguide gui tests benchmarks
	$(VENV)/bin/lint-imports

# What a headless machine (a GPU node, CI) gets: a fresh venv in a temp dir, `pip install .` with no
# extras, so no Qt. A run still trains and both app commands say what to install; the venv is removed after.
GUI_MISSING := kerasguide: the desktop app needs PySide6: pip install 'kerasguide[gui]'
headless:
	@set -eu; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; src=$$(pwd); \
	$(PYTHON) -m venv "$$tmp/venv"; bin="$$tmp/venv/bin"; \
	"$$bin/python" -m pip install --quiet --upgrade pip; \
	"$$bin/python" -m pip install --quiet "$$src"; \
	cd "$$tmp"; \
	if "$$bin/python" -c "import PySide6" 2>/dev/null; then echo "headless: PySide6 got installed without [gui]"; exit 1; fi; \
	"$$bin/python" -c "import kerasguide, kerasguide.spine; print('headless: kerasguide', kerasguide.__version__, 'imports without PySide6')"; \
	"$$bin/kerasguide" run digits --epochs 1 --out "$$tmp/runs" >"$$tmp/run.log" 2>&1 || { tail -20 "$$tmp/run.log"; exit 1; }; \
	grep -q '"status": "completed"' "$$tmp"/runs/*/run.json; echo "headless: kerasguide run digits completed"; \
	for app in "$$bin/kerasguide gui" "$$bin/kerasguide-gui"; do \
		code=0; said=$$($$app 2>&1) || code=$$?; \
		if [ "$$code" != 2 ] || [ "$$said" != "$(GUI_MISSING)" ]; then echo "headless: $$app: exit $$code: $$said"; exit 1; fi; \
	done; echo "headless: kerasguide gui and kerasguide-gui say \"$(GUI_MISSING)\", exit 2"

bench: $(STAMP)
	$(PY) benchmarks/run_speed.py

clean:
	rm -rf $(VENV) runs build *.egg-info
