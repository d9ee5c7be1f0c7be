# contivpy: the two commands a new user needs are `make demo` and `make test` (see README.md).
PYTHON ?= python3

.PHONY: deps install demo test lint bench

deps:            ## install the system packages and the Python package (idempotent)
	bash scripts/install-deps.sh

install:
	$(PYTHON) -m pip install -q -e '.[test]'

demo: deps       ## etcd + netmaster + two simulated hosts (OVS, dockerd, netplugin) running the seed scenario
	$(PYTHON) scripts/demo.py

test: deps       ## the whole test suite against real etcd, OVS and dockerd started by the fixtures
	$(PYTHON) -m pytest -q -p no:cacheprovider tests

lint:
	ruff check . && ruff format --check .
