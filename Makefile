# The two commands: `make test` and `make demo`. Both set themselves up (idempotently) first.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENVS := $(CURDIR)/.venvs
# Tool locations written by setup (PREFLOOP_VENVS_DIR, PREFLOOP_LLAMA_CPP_DIR).
WITH_ENV = set -a; source $(VENVS)/env; set +a;

.PHONY: setup test test-compose demo demo-gemma lock docs clean help

help:
	@echo "make demo   run the loop on the embedded default (sets itself up first)"
	@echo "make demo-gemma  the same on Gemma 3 270M, a base model of another family (fetched once, ~250 MB)"
	@echo "make test   run every test suite, each in its service's own venv"
	@echo "make test-compose  build the images and run the loop in the container stack (a Docker engine: set up if missing)"
	@echo "make setup  only the setup: venvs, llama.cpp build, model package"
	@echo "make lock   re-pin constraints.txt after changing a pyproject.toml"
	@echo "make docs   rewrite docs/configuration.md from the settings classes"

setup:
	@infra/setup.sh

# Each suite runs in the venv of the code it tests (infra/test.sh).
test: setup
	@$(WITH_ENV) infra/test.sh

# The CPU container stack end to end; installs and starts a Docker engine where there is none (infra/docker.sh).
test-compose: setup
	@$(WITH_ENV) infra/test-compose.sh

demo: setup
	@$(WITH_ENV) ./prefloop demo

# Gemma 3 270M, the base model (no chat template of its own: Gemma's is given), in its own PREFLOOP_HOME.
demo-gemma: setup
	@gguf="$$(infra/gemma.sh | tail -n 1)"; $(WITH_ENV) PREFLOOP_BASE_GGUF="$$gguf" PREFLOOP_BASE_CHAT_TEMPLATE=gemma \
	  PREFLOOP_HOME="$${PREFLOOP_HOME:-$$HOME/.prefloop-gemma}" ./prefloop demo

lock:
	@infra/lock.sh

docs: setup
	@$(WITH_ENV) infra/configuration.sh

clean:
	rm -rf $(VENVS)
