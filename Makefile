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

.PHONY: book test unit notebooks notebooks-fallback fresh-reader book-html book-check book-student student-check \
        install clean

$(STAMP): pyproject.toml requirements-lock.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -c requirements-lock.txt -e ".[book,test]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (decs)"
	touch $(STAMP)

install: $(STAMP)

## make book: build the HTML book, executing every notebook (profile: DECS_PROFILE, default ci)
book: $(STAMP)
	$(VENV)/bin/jupyter-book build . -W -n --keep-going
	@# math that renders offline: MathJax copied into the HTML (skipped, with a message, when offline)
	-$(PY) tools/vendor_mathjax.py _build/html
	@echo "open _build/html/index.html"

## make test: unit tests, every notebook under nbval, the real-scale chapters once more with the
## committed model files hidden (their "else train" branch), a fresh reader's set-up from the
## installed wheel (with the release's records served, and offline without them), the student
## edition built without executing (no solution may reach it), and the executed build (-W -n)
## with tests on its HTML
test: unit notebooks notebooks-fallback fresh-reader student-check book-html

unit: $(STAMP)
	$(PY) -m pytest tests -q

notebooks: $(STAMP)
	$(PY) -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider book -q

## the chapters that load committed networks, with the networks hidden: they must train at the active profile
FALLBACK := book/03_representation_learning.ipynb book/04_dec_pseudo_targets.ipynb \
            book/08_training_usps.ipynb book/embedding_tsne.ipynb
notebooks-fallback: $(STAMP)
	DECS_COMMITTED=0 $(PY) -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider $(FALLBACK) -q
	@# chapter 02 on a machine with no dataset at all: it must say "not available", not crash
	empty=$$(mktemp -d) && DECS_DATA=$$empty DECS_DOWNLOAD=0 $(PY) -m pytest --nbval-lax --nbval-current-env \
	    -p no:cacheprovider book/02_clustering_and_metrics.ipynb -q; status=$$?; rm -rf $$empty; exit $$status

## a fresh reader: the package from a built wheel on an import path of its own, no DECS_DATA, the
## working folder outside the repository, data and the release's results from a local HTTP server,
## and the set-up cell of every notebook run (tools/fresh_reader.py says what each step stands for)
## then the same reader offline, or before the release is published: no server, downloads refused,
## so no records; the chapters that read records and train little run to their end saying what is
## "NOT AVAILABLE", and a training chapter's set-up runs (the training chapters' record-free path
## is the DECS_COMMITTED=0 one of notebooks-fallback)
OFFLINE_WHOLE := book/06_determinacy_and_stability.ipynb book/theorem1.ipynb book/dying_clusters.ipynb \
                 book/five_datasets.ipynb book/reproducibility.ipynb
fresh-reader: $(STAMP)
	$(PY) tools/fresh_reader.py --data "$(DECS_DATA)"
	$(PY) tools/fresh_reader.py --offline --data "$(DECS_DATA)" --whole $(OFFLINE_WHOLE) \
	    --notebooks $(OFFLINE_WHOLE) book/08_training_usps.ipynb

## the executed build, then tests on what a reader sees (no internal notes, no build-machine paths, scale notes)
book-html: book
	DECS_BUILT_BOOK=$(abspath _build/html) $(PY) -m pytest tests/test_built_book.py -q

# _config.yml's local Sphinx extension (book/_ext), for a copy of the config in another folder
LOCAL_EXT := -e 's|^    paper_numbers: book/_ext$$|    paper_numbers: $(CURDIR)/book/_ext|'

## the same build without executing notebooks: a broken reference, citation or toc entry fails here
book-check: $(STAMP)
	rm -rf _build/check && mkdir -p _build/check
	# not executing means glued numbers are absent: their warnings are checked by `make book`
	@# the copied config sits elsewhere: its local extension's folder (relative to the config) made absolute
	sed -e 's/execute_notebooks: force/execute_notebooks: "off"/' $(LOCAL_EXT) \
	    -e 's/suppress_warnings: \["mystnb.unknown_mime_type"\]/suppress_warnings: ["mystnb.unknown_mime_type", "mystnb.glue"]/' \
	    _config.yml > _build/check/_config.yml
	$(VENV)/bin/jupyter-book build . -W -n --keep-going --path-output _build/check \
	    --config _build/check/_config.yml

## make book-student: the book without the solutions to the exercises, for assignments (HTML in
## _build/student/_build/html): sphinx-exercise's hide_solutions drops every {solution} block, and
## the page sources (which hold the solutions) are neither copied into the HTML nor offered for
## download (recursive_update merges that one theme option into the book's). Notebooks are
## executed as in `make book`; STUDENT_EXECUTE=off skips that (glued numbers are then absent, as
## in book-check). The build fails if a solution reaches the HTML folder.
STUDENT_EXECUTE ?= force
GLUE_OFF := -e 's/suppress_warnings: \["mystnb.unknown_mime_type"\]/suppress_warnings: ["mystnb.unknown_mime_type", "mystnb.glue"]/'
book-student: $(STAMP)
	rm -rf _build/student && mkdir -p _build/student
	sed -e 's/execute_notebooks: force/execute_notebooks: "$(STUDENT_EXECUTE)"/' $(LOCAL_EXT) \
	    -e 's/^  config:$$/  recursive_update: true\n  config:\n    hide_solutions: true\n    html_copy_source: false\n    html_theme_options:\n      use_download_button: false/' \
	    $(if $(filter off,$(STUDENT_EXECUTE)),$(GLUE_OFF)) \
	    _config.yml > _build/student/_config.yml
	grep -q '^    hide_solutions: true$$' _build/student/_config.yml
	$(VENV)/bin/jupyter-book build . -W -n --keep-going --path-output _build/student \
	    --config _build/student/_config.yml
	! grep -rlE 'class="[^"]*solution|\{solution\}' _build/student/_build/html
	@echo "open _build/student/_build/html/index.html"

## the student edition in make test: built without executing (a few minutes), -W -n, and failing
## if a solution reaches its HTML (the check of book-student); the Pages workflow builds it executed
student-check: $(STAMP)
	$(MAKE) book-student STUDENT_EXECUTE=off
