# Two commands that work on a fresh clone: `make demo` and `make test`; `make docs` builds the site.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint docs results clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=/path/to/python3.11'"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e ".[dev,ray,docs]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/worldmodels train --env CartPole-v1 --run-dir runs/demo --seed 0 --resume \
		--episodes 100 --video runs/demo/videos/episode.gif

test: $(STAMP)  # two pytest-xdist workers, one test file each at a time (a file's fixtures run once)
	$(PY) -m pytest -q -n 2 --dist loadfile

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

lint: $(STAMP)  # ruff, mypy and the import layers (pyproject.toml [tool.importlinter])
	$(VENV)/bin/ruff check src tests benchmarks docs/hooks
	$(VENV)/bin/ruff format --check src tests benchmarks docs/hooks
	$(VENV)/bin/mypy src --ignore-missing-imports
	$(VENV)/bin/lint-imports

docs: $(STAMP)  # the MkDocs site into site/; --strict: a broken link, anchor or reference fails
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

results: $(STAMP)  # docs/results.md, the learning-curves figure and the README's table from benchmarks/results/
	$(PY) benchmarks/tables.py

clean:
	rm -rf $(VENV) runs .pytest_cache site
