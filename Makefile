# sglang.prep: every set-up step is a target; `make demo` and `make test` need nothing else.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
COLLECTION := collections/ansible_collections/sglang/prep
PYTEST := $(BIN)/python -m pytest -p no:cacheprovider

.PHONY: help venv docker images demo test test-unit test-contract test-integration test-faults lint sanity \
        molecule test-fleet bench release clean

help:
	@echo "make demo   prime a local demo host (stand-in image, tiny model) and show the result"
	@echo "make test   every test tier: unit, contract, integration, faults, lint, sanity, molecule, fleet"
	@echo "make bench  no-op re-prime and fleet timings"
	@echo "make release VERSION=x.y.z  release the collection from its changelog fragments"

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt scripts/find-python.sh
	@py=$$(scripts/find-python.sh) && echo "Creating $(VENV) with $$py" && "$$py" -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	@touch $@

docker:
	@scripts/ensure-docker.sh

images: docker
	@scripts/build-images.sh

demo: venv images
	$(BIN)/ansible-playbook -i inventory/demo.yml playbooks/demo.yml

test: test-unit test-contract lint sanity test-integration test-faults molecule test-fleet

test-unit: venv
	$(PYTEST) tests/unit

test-contract: venv
	@scripts/contract-venv.sh
	$(PYTEST) tests/contract

test-integration: venv images
	$(PYTEST) tests/integration

test-faults: venv images
	$(PYTEST) tests/faults

lint: venv
	$(BIN)/ansible-lint --offline
	scripts/complexity.sh

sanity: venv
	@scripts/sanity.sh

molecule: venv images
	$(BIN)/molecule test -s default

test-fleet: venv images
	$(PYTEST) tests/fleet

bench: venv images
	$(BIN)/python scripts/bench.py

# make release VERSION=1.2.0: galaxy.yml's version and the changelog's new section, from the fragments
release: venv
	@scripts/release.sh $(VERSION)

clean:
	rm -rf $(VENV) .cache
