# The two commands of the README. Each creates .venv and installs what it needs if missing.
SHELL  := /bin/bash
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Real data: ../shared/data when present (as in CI), else DECS_DATA or data/.
export DECS_DATA ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),$(abspath data))
export DECS_PROFILE ?= ci
export PYTHONHASHSEED := 0

.PHONY: book test unit notebooks book-check install clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[book,test]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (decs)"
	touch $(STAMP)

install: $(STAMP)

## make book: build the HTML book, executing every notebook (profile: DECS_PROFILE, default ci)
book: $(STAMP)
	$(VENV)/bin/jupyter-book build . -W -n --keep-going
	@echo "open _build/html/index.html"

## make test: unit tests, every notebook under nbval, and a build without execution (-W -n)
test: unit notebooks book-check

unit: $(STAMP)
	$(PY) -m pytest tests -q

notebooks: $(STAMP)
	$(PY) -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider book -q

## the same build without executing notebooks: a broken reference, citation or toc entry fails here
book-check: $(STAMP)
	rm -rf _build/check && mkdir -p _build/check
	# not executing means glued numbers are absent: their warnings are checked by `make book`
	sed -e 's/execute_notebooks: force/execute_notebooks: "off"/' \
	    -e 's/suppress_warnings: \["mystnb.unknown_mime_type"\]/suppress_warnings: ["mystnb.unknown_mime_type", "mystnb.glue"]/' \
	    _config.yml > _build/check/_config.yml
	$(VENV)/bin/jupyter-book build . -W -n --keep-going --path-output _build/check \
	    --config _build/check/_config.yml
