# nbmemo developer entry point. `just` lists the recipes.

set shell := ["bash", "-euo", "pipefail", "-c"]

venv := ".venv"
python := venv / "bin/python"
# A second environment with cloudpickle only: the runner's behaviour without IPython & co.
bare := ".venv-bare"

# List the recipes.
default:
    @just --list

# Create `.venv` with the pinned Python packages the workers and tests use.
setup:
    @test -x {{python}} || python3 -m venv {{venv}}
    @{{python}} -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
    @{{python}} -m pip install --quiet --disable-pip-version-check --only-binary=:all: -r tests/corpus/requirements.txt
    @test -x {{bare}}/bin/python || python3 -m venv {{bare}}
    @{{bare}}/bin/python -m pip install --quiet --disable-pip-version-check cloudpickle==3.1.2

# Set up, build, then plan and run the quickstart notebook (twice: the second run is cached).
quickstart: setup
    cargo build --release --quiet
    ./target/release/nbmemo plan examples/quickstart.ipynb
    ./target/release/nbmemo run examples/quickstart.ipynb --python {{python}} --show-output
    ./target/release/nbmemo run examples/quickstart.ipynb --python {{python}}

# Run the test suite (unit and integration tests, the example smoke tests, the bench smoke test).
test: setup
    NBMEMO_TEST_PYTHON={{python}} cargo test --quiet
    {{python}} -m unittest discover --quiet -s tests/python
    {{bare}}/bin/python -m unittest discover --quiet -s tests/python
    {{python}} bench/bench.py --quick

# Format the code.
fmt:
    cargo fmt --all

# Formatting and clippy, warnings as errors.
lint:
    cargo fmt --all --check
    cargo clippy --all-targets --quiet -- -D warnings

# The baselines' pinned virtualenv, `.venv-bench`, is created on first use (`just bench-setup`).
# Benchmarks, nbmemo alone and side by side with nbconvert, papermill, jupyter-cache, marimo (`--quick`: smoke run; `--write`: BENCHMARKS.md).
bench *ARGS: setup
    {{python}} bench/bench.py {{ARGS}}

# Create or update `.venv-bench`, the benchmarks' virtualenv (bench/requirements-baselines.txt).
bench-setup:
    python3 bench/baselines.py

# Plan and run an example: `just example quickstart.ipynb`.
example NAME: setup
    cargo run --quiet -- plan examples/{{NAME}}
    cargo run --quiet -- run examples/{{NAME}} --python {{python}}

# What CI runs.
ci: lint test

# API docs.
docs:
    cargo doc --no-deps --document-private-items
