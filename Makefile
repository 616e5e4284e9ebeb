# recon3d — developer entry points.
#   make demo   reconstruct tests/data/grace_hopper.jpg into out/grace_hopper/
#   make test   run the fast test suite (slow tests excluded)
# Both create .venv and check the headless GL libraries first.

PYTHON ?= python3
VENV ?= .venv
# Exact pin: on the project machines this takes the local CPU wheel (PIP_FIND_LINKS).
# A plain `torch` requirement would pull several GB of CUDA packages from PyPI.
TORCH_SPEC ?= torch==2.13.0
TORCH_WHEELS ?= /opt/wheels

# Headless OpenGL for pyrender: EGL by default (use PYOPENGL_PLATFORM=osmesa to switch).
PYOPENGL_PLATFORM ?= egl
export PYOPENGL_PLATFORM

VPY := $(VENV)/bin/python
VPIP := $(VPY) -m pip
STAMP := $(VENV)/.recon3d-installed
DEMO_DIR := out/grace_hopper
DEMO_IMG := tests/data/grace_hopper.jpg
# Let pip see the local torch wheel even when PIP_FIND_LINKS is not set.
FIND_LINKS := $(if $(PIP_FIND_LINKS),,$(if $(wildcard $(TORCH_WHEELS)/*.whl),--find-links $(TORCH_WHEELS),))
LDCONFIG := $(firstword $(wildcard /sbin/ldconfig /usr/sbin/ldconfig) ldconfig)
GL_PACKAGES := libegl1 libegl-mesa0 libgl1 libopengl0 libgl1-mesa-dri libosmesa6

.DEFAULT_GOAL := help
.PHONY: help venv gl demo test test-slow test-min-deps lint bench bench-body bench-load bench-networks bench-fit-device bench-reposer fuzz clean distclean

help:
	@echo "make demo       reconstruct $(DEMO_IMG) -> $(DEMO_DIR)/head.obj (+ .mtl, .png, preview.png)"
	@echo "make test       fast tests (pytest -m 'not slow')"
	@echo "make test-slow  slow tests only (pytest -m slow)"
	@echo "make test-min-deps  lowest allowed dependency versions in /tmp/venv-min + a test subset (~5-10 min)"
	@echo "make lint       ruff check"
	@echo "make bench      benchmarks/bench_head.py"
	@echo "make bench-body benchmarks/bench_body.py (full body: 3 full-body + 2 upper-body photos)"
	@echo "make bench-load benchmarks/bench_load.py (200 reconstructions, RSS slope)"
	@echo "make bench-networks benchmarks/bench_networks.py (optimisation vs trained networks, head and body)"
	@echo "make bench-fit-device benchmarks/bench_fit_device.py (the body's fit stage on the CPU and, where present, CUDA)"
	@echo "make bench-reposer benchmarks/bench_reposer.py (reposer fps at 256/512, 2 threads; training it/s)"
	@echo "make fuzz       atheris over the image, weights, export, OpenPose and mocap parsers (FUZZ_SECONDS each)"
	@echo "make venv       create $(VENV) and install the project (torch first)"
	@echo "make gl         make sure headless EGL/OSMesa libraries are installed"
	@echo "make clean      remove out/ and caches (keeps $(VENV))"
	@echo "make distclean  clean + remove $(VENV)"

# ---------------------------------------------------------------- environment
venv: $(STAMP)

$(STAMP): pyproject.toml setup.py
	@if [ ! -x "$(VPY)" ]; then \
		echo ">> creating $(VENV) with $(PYTHON)"; \
		$(PYTHON) -m venv $(VENV) || { echo "!! '$(PYTHON) -m venv' failed (on Debian: apt-get install python3-venv)"; exit 1; }; \
		$(VPIP) install --quiet --upgrade pip; \
	fi
	@if $(VPY) -c "import torch" >/dev/null 2>&1; then \
		echo ">> torch already installed: $$($(VPY) -c 'import torch; print(torch.__version__)')"; \
	else \
		echo ">> installing $(TORCH_SPEC) first (CPU wheel)"; \
		$(VPIP) install $(FIND_LINKS) "$(TORCH_SPEC)"; \
	fi
	$(VPIP) install $(FIND_LINKS) -e ".[dev]"
	@# pyrender pins PyOpenGL==3.1.0, but headless EGL/OSMesa needs >=3.1.7.
	@# `pip check` reports this one known conflict; it is expected.
	$(VPIP) install "pyopengl>=3.1.7"
	@touch $(STAMP)

gl:
	@if $(LDCONFIG) -p 2>/dev/null | grep -q 'libEGL\.so\.1' \
		&& $(LDCONFIG) -p 2>/dev/null | grep -Eq 'libOpenGL\.so\.0|libGL\.so\.1'; then \
		echo ">> headless GL: EGL found"; \
	elif $(LDCONFIG) -p 2>/dev/null | grep -q 'libOSMesa'; then \
		echo ">> headless GL: OSMesa found (EGL missing; run with PYOPENGL_PLATFORM=osmesa)"; \
	else \
		if [ "$$(id -u)" = "0" ]; then SUDO=""; \
		elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; \
		else \
			echo "!! No headless OpenGL library found (libEGL.so.1 or libOSMesa)."; \
			echo "!! Install as root: apt-get update && apt-get install -y $(GL_PACKAGES)"; \
			exit 1; \
		fi; \
		echo ">> installing headless GL libraries: $(GL_PACKAGES)"; \
		$$SUDO apt-get update && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y --no-install-recommends $(GL_PACKAGES) \
		|| { echo "!! apt-get failed; install by hand: $(GL_PACKAGES)"; exit 1; }; \
	fi

# ---------------------------------------------------------------- usage
demo: venv gl
	@mkdir -p $(DEMO_DIR)
	$(VENV)/bin/recon3d reconstruct $(DEMO_IMG) -o $(DEMO_DIR)/head.obj --preview $(DEMO_DIR)/preview.png
	@echo ""
	@echo ">> done. Files in $(DEMO_DIR)/:"
	@echo "   $(DEMO_DIR)/head.obj      mesh (open in Blender, MeshLab, ...)"
	@echo "   $(DEMO_DIR)/head.mtl      material"
	@echo "   $(DEMO_DIR)/head.png      texture"
	@echo "   $(DEMO_DIR)/preview.png   rendered preview"

# pytest exits 5 when no test was collected: report it plainly (make then fails too).
test: venv gl
	@$(VPY) -m pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "!! pytest collected no tests (exit 5): nothing was tested"; fi; \
	exit $$rc

test-slow: venv gl
	$(VPY) -m pytest -q -m slow

# Lowest versions pyproject.toml allows (torch stays at the local 2.13.0 CPU wheel), in a separate
# venv; not part of `make test` (it installs a second environment). See docs/hardening.md.
test-min-deps: gl
	nice scripts/check_dependency_bounds.sh

lint: venv
	$(VENV)/bin/ruff check recon3d tests benchmarks examples scripts fuzz

bench: venv gl
	$(VPY) benchmarks/bench_head.py

bench-body: venv gl
	$(VPY) benchmarks/bench_body.py

bench-load: venv gl
	$(VPY) benchmarks/bench_load.py

bench-networks: venv gl
	$(VPY) benchmarks/bench_networks.py

bench-fit-device: venv gl
	$(VPY) benchmarks/bench_fit_device.py

bench-reposer: venv gl
	$(VPY) benchmarks/bench_reposer.py

FUZZ_SECONDS ?= 150
fuzz: venv
	$(VPIP) install -e ".[fuzz]"
	$(VPY) fuzz/fuzz_image.py -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=fuzz/ fuzz/corpus_image
	$(VPY) fuzz/fuzz_manifest.py -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=fuzz/ fuzz/corpus_weights
	$(VPY) fuzz/fuzz_export.py -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=fuzz/
	$(VPY) fuzz/fuzz_openpose.py -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=fuzz/ -dict=fuzz/openpose.dict fuzz/corpus_openpose
	$(VPY) fuzz/fuzz_mocap.py -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=fuzz/ -dict=fuzz/mocap.dict fuzz/corpus_mocap

# ---------------------------------------------------------------- cleanup
clean:
	rm -rf out build dist .pytest_cache .ruff_cache .hypothesis *.egg-info
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
