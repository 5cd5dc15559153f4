# Two commands do all the set-up: `make demo` (train + evaluate MAML on navigation2d, CPU)
# and `make test`. Both create .venv and install what is missing; `make test` also creates
# .venv-mw, the environment of the Meta-World families (Meta-World pins mujoco==3.3.0, the
# locomotion families in .venv run on MuJoCo 4: see the README's Meta-World section).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= runs/demo
TORCH_VERSION ?= 2.13.0
VENV_MW := .venv-mw
MW_STAMP := $(VENV_MW)/.installed
# In .venv-mw: the Meta-World families' own tests, and the tests that run over every family
# (checks, frames, watch) on Meta-World's representative (tests/families.py).
MW_TESTS := tests/test_family_metaworld.py tests/test_families.py tests/test_viewer.py \
	-k "metaworld or ml1"

export PYGAME_HIDE_SUPPORT_PROMPT := 1
export SDL_VIDEODRIVER ?= dummy
export SDL_AUDIODRIVER ?= dummy

.PHONY: demo test test-slow test-ray lint bench results clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, pinned, so the CPU build already on this machine's disk is reused
	# (an unpinned requirement could pull a multi-GB CUDA build).
	$(BIN)/pip install --quiet "torch==$(TORCH_VERSION)"
	$(BIN)/pip install --quiet -e ".[dev,mujoco,tensorboard]"
	touch $(STAMP)

$(MW_STAMP): pyproject.toml
	test -x $(VENV_MW)/bin/python || $(PYTHON) -m venv $(VENV_MW)
	$(VENV_MW)/bin/pip install --quiet "torch==$(TORCH_VERSION)"
	$(VENV_MW)/bin/pip install --quiet -e ".[dev,metaworld]"
	touch $(MW_STAMP)

demo: $(STAMP)
	$(BIN)/metarl train --family navigation2d --algo maml --iterations 100 --seed 0 --out $(DEMO_DIR) --resume
	$(BIN)/metarl evaluate $(DEMO_DIR) --test-tasks 40 --adapt-steps 3 --episodes 20 --json $(DEMO_DIR)/evaluation.json

test: $(STAMP) $(MW_STAMP)
	$(BIN)/python -m pytest -q
	$(VENV_MW)/bin/python -m pytest -q $(MW_TESTS)

test-slow: $(STAMP) $(MW_STAMP)
	$(BIN)/python -m pytest -q -m slow
	$(VENV_MW)/bin/python -m pytest -q -m slow tests/test_family_metaworld.py

# Ray is an optional extra: this target installs it and runs the tests that start a local Ray.
test-ray: $(STAMP)
	$(BIN)/pip install --quiet -e ".[dev,mujoco,tensorboard,ray]"
	$(BIN)/python -m pytest -q tests/test_ray.py

# mypy checks the installed package, metarl.envs and metarl.agents included: it reads them
# through a tree of links laid out as the package installs (build/typecheck/metarl).
TYPECHECK := build/typecheck
lint: $(STAMP)
	$(BIN)/ruff check metarl envs agents scripts tests
	rm -rf $(TYPECHECK) && mkdir -p $(TYPECHECK)/metarl
	for path in metarl/*; do ln -s "$(CURDIR)/$$path" $(TYPECHECK)/metarl/; done
	ln -s "$(CURDIR)/envs" $(TYPECHECK)/metarl/envs
	ln -s "$(CURDIR)/agents" $(TYPECHECK)/metarl/agents
	cd $(TYPECHECK) && "$(CURDIR)/$(BIN)/mypy" --config-file "$(CURDIR)/pyproject.toml" -p metarl

# Regenerates the tables and figures under docs/results (about four hours on 2 cores;
# the locomotion ones: scripts/locomotion_results.sh, about five more on one core).
results: $(STAMP)
	scripts/results.sh

bench: $(STAMP)
	$(BIN)/metarl bench

clean:
	rm -rf $(VENV) $(VENV_MW) runs
