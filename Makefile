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
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/kerasguide run --out runs

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(VENV)/bin/ruff check kerasguide gui tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/run_speed.py

clean:
	rm -rf $(VENV) runs build *.egg-info
