# kemp: task runner. `just --list` shows every recipe.
# The install path pins torch to the CPU 2.13.0 wheel (constraints.txt); see README "GPU".

set shell := ["bash", "-euo", "pipefail", "-c"]

python := env_var_or_default("PYTHON", "python3")
venv := ".venv"
bin := venv / "bin"
shared := env_var_or_default("KEMP_SHARED", justfile_directory() / ".." / "shared")
export NLTK_DATA := env_var_or_default("NLTK_DATA", shared / "nltk_data")

# Show the recipes.
default:
    @just --list

# Create .venv and install both packages (editable) with the test tools.
setup:
    test -x {{bin}}/python || {{python}} -m venv {{venv}}
    {{bin}}/python -m pip install -q --disable-pip-version-check -c constraints.txt \
        -e packages/kemp-kg -e packages/kemp-model -r requirements-dev.txt

# The main job on the embedded default: index -> enrich -> train -> generate -> chat, on the
# built-in sample (a small knowledge graph, lexicon and dialogue set written for this project; see
# data/README.md), ending with what it showed and what to run next (scripts/demo.py).
demo out="work/demo": setup
    {{bin}}/python scripts/demo.py --out {{out}}

# What CI runs: lint and format check, then the whole test suite (slow tests excluded;
# `just test-slow` runs them).
test: setup
    {{bin}}/ruff check .
    {{bin}}/ruff format --check .
    {{bin}}/python -m pytest -q -m "not slow" tests

# Lint and format check (ruff, pinned in requirements-dev.txt; settings in pyproject.toml).
lint: setup
    {{bin}}/ruff check .
    {{bin}}/ruff format --check .

# Slow tests only (long real-data runs).
test-slow: setup
    {{bin}}/python -m pytest -q -m slow tests

# Benchmarks (see bench/README.md); results land in bench/results/.
bench name="all": setup
    {{bin}}/python bench/run.py {{name}}

# Longer fuzzing (not CI): Hypothesis x30 and 200k coverage-guided runs of the ConceptNet line target.
fuzz: setup
    KEMP_FUZZ_SCALE=30 {{bin}}/python -m pytest -q -p no:cacheprovider tests/fuzz/test_parser_properties.py
    mkdir -p work/fuzz && cd work/fuzz && ../../{{bin}}/python ../../tests/fuzz/fuzz_conceptnet_line.py -runs=200000 -max_len=256

# Reproduce KEMP on real data (index, enrich, train the 4 published presets on the paper's
# schedule, ~2 h each on a quiet CPU core, evaluate, score the official predictions) and write
# docs/RESULTS.md; resumes where it stopped, also in a later session while --work survives.
# Extra flags go to the script, e.g. `just reproduce --steps wo-ece=8000 wo-edd=8000`.
reproduce *flags: setup
    {{bin}}/python scripts/reproduce.py --data {{shared}}/data {{flags}}
