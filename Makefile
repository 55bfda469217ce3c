# Sluice's two entry points: `make demo` (set up + run Mono, NL and Multi on the bundled samples), `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO ?= out/demo

.PHONY: setup setup-test setup-train demo train-demo test bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.sluice-base: setup.py | $(VENV)/bin/python
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.sluice-test: setup.py | $(VENV)/bin/python
	$(PY) -m pip install -q -e '.[test]'
	touch $@ $(VENV)/.sluice-base

$(VENV)/.sluice-train: setup.py | $(VENV)/bin/python
	$(PY) -m pip install -q -e '.[train]'
	touch $@ $(VENV)/.sluice-base

setup: $(VENV)/.sluice-base
setup-test: $(VENV)/.sluice-test
setup-train: $(VENV)/.sluice-train

demo: setup
	$(PY) -m pipelines.tokenizer --source mono --input samples/mono/manifest.jsonl \
	    --output $(DEMO)/tokenizer --vocab_size 8000 --overwrite
	$(PY) -m pipelines.mono --input samples/mono/manifest.jsonl --output $(DEMO)/mono \
	    --tokenizer $(DEMO)/tokenizer/tokenizer.model --num_shards 4 --seq_len 2048 \
	    --write_documents --write_rejects --overwrite
	$(PY) -m pipelines.summary $(DEMO)/mono
	@# NL reuses the one tokenizer, as CodeGen used one tokenizer for all its corpora.
	$(PY) -m pipelines.nl --input 'samples/nl/train/*.jsonl.zst,samples/nl/val.jsonl.zst' \
	    --output $(DEMO)/nl --tokenizer $(DEMO)/tokenizer/tokenizer.model --num_shards 4 \
	    --seq_len 2048 --write_documents --write_rejects --overwrite
	$(PY) -m pipelines.summary $(DEMO)/nl
	@# Multi runs the BigQuery SQL file over the bundled github_repos snapshot, with DuckDB.
	$(PY) -m pipelines.multi --bigquery_snapshot samples/multi/snapshot --output $(DEMO)/multi \
	    --tokenizer $(DEMO)/tokenizer/tokenizer.model --num_shards 4 --seq_len 2048 \
	    --write_documents --write_rejects --overwrite
	$(PY) -m pipelines.summary $(DEMO)/multi

# Tiny CPU run of the training stages on the demo data (nl -> multi -> mono), then HumanEval, MTPB and
# prompt perplexity with a few samples. Runs `make demo` first if its data is missing.
train-demo: setup-train
	test -f $(DEMO)/mono/manifest.json || $(MAKE) demo
	$(PY) -m training.demo --data $(DEMO) --output $(DEMO)/train

test: setup-test
	$(PY) -m pytest

bench: setup
	$(PY) bench/mono_pipeline.py

clean:
	rm -rf out
