# mrovseg — everyday commands. On a fresh clone `make train` and `make test` set up first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo train test test-slow test-all lint format bench bench-loader bench-precision gpu-report profile-step pretrain-toy-clip clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)           ## create .venv and install the package with dev tools

DEMO_STAMP := $(VENV)/.demo-installed
$(DEMO_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install -e ".[demo]"
	touch $(DEMO_STAMP)

demo: $(DEMO_STAMP)         ## the browser demo on the latest default-experiment checkpoint (http://127.0.0.1:7860)
	@ckpt=$$(ls -t outputs/train/runs/*/checkpoints/last.ckpt 2>/dev/null | head -1); \
	if [ -z "$$ckpt" ]; then echo "No checkpoint in outputs/train/runs/*/checkpoints/: run 'make train' first (6–20 min on 2 CPU cores), then 'make demo'."; exit 1; fi; \
	echo "demo: $$ckpt"; $(PY) -m mrovseg.demo ckpt_path=$$ckpt $(ARGS)

train: $(STAMP)             ## the default experiment (toy world, CPU; 6 min on 2 AVX512 cores, 19 on 2 AVX2 cores)
	$(PY) -m mrovseg.train $(ARGS)

test: $(STAMP)              ## the test suite without the slow tests
	$(PY) -m pytest -q -m "not slow" $(ARGS)

test-slow: $(STAMP)         ## only the slow tests (full default experiment, DDP, sweeps, notebook)
	$(PY) -m pytest -q -m slow $(ARGS)

test-all: $(STAMP)
	$(PY) -m pytest -q $(ARGS)

lint: $(STAMP)
	$(PY) -m ruff check src tests scripts
	$(PY) -m ruff format --check src tests scripts

format: $(STAMP)
	$(PY) -m ruff check --fix src tests scripts
	$(PY) -m ruff format src tests scripts

bench: $(STAMP)             ## params / GFLOPs / latency of ViT-B/16 and ViT-L/14 (random weights)
	$(PY) scripts/benchmark.py $(ARGS)

bench-precision: $(STAMP)   ## CPU ViT-B/16 640² forward in fp32 / bf16 / int8 and the matmul floor -> outputs/bench_precision.json
	$(PY) scripts/bench_cpu_precision.py --json outputs/bench_precision.json $(ARGS)

gpu-report: $(STAMP)        ## the one-command GPU report (< 8 min on one GPU): outputs/gpu_report/gpu_report.{json,md}
	$(PY) scripts/gpu_report.py $(ARGS)

profile-step: $(STAMP)      ## CPU profile of one ViT-B/16 training step (ARGS="--report memory|compile" for the switches)
	$(PY) scripts/profile_step.py $(ARGS)

bench-loader: $(STAMP)
	$(PY) scripts/bench_loader.py $(ARGS)

pretrain-toy-clip: $(STAMP) ## re-create the shipped toy CLIP (about 10 min on 2 cores)
	$(PY) scripts/pretrain_toy_clip.py $(ARGS)

clean:
	rm -rf outputs multirun .pytest_cache .ruff_cache
