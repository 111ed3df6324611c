# Toitsu — every target bootstraps what it needs (DESIGN §7): `make serve`, `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= serve,train,models,dev
STAMP := $(VENV)/.toitsu-installed
MODELS ?= models
WORK ?= build
VAR ?= var
PORT ?= 50051
PYTEST_ARGS ?=

.PHONY: help venv models serve test protos bench clean

help:
	@echo "make serve   - create the venv, build the default model pack, run the gateway on 127.0.0.1:$(PORT)"
	@echo "make test    - same bootstrap, then the whole test suite"
	@echo "make models  - build the default model pack into $(MODELS)/ (offline; cached)"
	@echo "make protos  - regenerate protos/v1/*_pb2*.py from the .proto files"
	@echo "make bench   - benchmarks (JSON into bench/results/)"

# The environment: one venv with every extra; exact versions from constraints.txt.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	@touch $@

venv: $(STAMP)

models: $(STAMP)
	$(BIN)/toitsu models build-defaults --models $(MODELS) --work $(WORK)

serve: models
	$(BIN)/toitsu serve --port $(PORT) --models $(MODELS) --var $(VAR)

test: models
	TOITSU_MODELS=$(abspath $(MODELS)) $(BIN)/python -m pytest $(PYTEST_ARGS)

protos: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -I . --python_out=. --grpc_python_out=. --pyi_out=. protos/v1/*.proto

bench: models
	$(BIN)/python bench/bench_verify.py --models $(MODELS) --work $(WORK)
	$(BIN)/python bench/bench_identify.py

clean:
	rm -rf $(WORK) .pytest_cache
