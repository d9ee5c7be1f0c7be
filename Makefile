# contivpy: the two commands a new user needs are `make demo` and `make test` (see README.md).
# The project's virtual environment, made by scripts/install-deps.sh with Debian's own python3.
PYTHON ?= .venv/bin/python

.PHONY: deps install demo test lint bench

deps:            ## install the system packages and the Python package (idempotent)
	bash scripts/install-deps.sh

install: deps

demo: deps       ## etcd + netmaster + two simulated hosts (OVS, dockerd, netplugin) running the seed scenario
	$(PYTHON) scripts/demo.py

test: deps       ## the whole test suite against real etcd, OVS and dockerd started by the fixtures
	$(PYTHON) -m pytest -q -p no:cacheprovider tests

lint:
	$(PYTHON) -m ruff check . && $(PYTHON) -m ruff format --check .
