# nbmemo developer entry point. `just` lists the recipes.

set shell := ["bash", "-euo", "pipefail", "-c"]

venv := ".venv"
python := venv / "bin/python"
# A second environment with cloudpickle only: the runner's behaviour without IPython & co.
bare := ".venv-bare"
# The Python package's build tool, pinned, in a throwaway virtualenv under target/.
maturin_pin := "maturin==1.16.0"
maturin_venv := "target/maturin-venv"

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
    cargo clippy --workspace --all-targets --quiet -- -D warnings

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

# Build the Python wheel (the `nbmemo` command, `import nbmemo`, the pytest plugin) into target/wheels.
wheel PROFILE="release": _maturin
    {{maturin_venv}}/bin/maturin build --profile {{PROFILE}} --out target/wheels

# Build the wheel, install it in a fresh virtualenv and test the installed package (`dev`: reuses `just test`'s build).
wheel-test PROFILE="dev": _maturin
    #!/usr/bin/env bash
    set -euo pipefail
    dir=target/wheel-test
    rm -rf "$dir" && mkdir -p "$dir"
    start=$SECONDS
    {{maturin_venv}}/bin/maturin build --profile {{PROFILE}} --out "$dir/dist"
    wheel=$(echo "$dir"/dist/*.whl)
    echo "wheel-test: built $(basename "$wheel") ($(du -k "$wheel" | cut -f1) KiB, {{PROFILE}} profile) in $((SECONDS - start))s"
    # A fresh virtualenv, nothing activated: the workers default to its interpreter.
    unset VIRTUAL_ENV NBMEMO_CACHE_DIR
    python3 -m venv "$dir/venv"
    "$dir/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$wheel" pytest==9.0.3 cloudpickle==3.1.2
    "$dir/venv/bin/nbmemo" --version
    "$dir/venv/bin/nbmemo" run examples/quickstart.ipynb --cache-dir "$dir/cache"
    "$dir/venv/bin/python" -m unittest discover -s tests/python_package
    # abi3: the same wheel in the oldest CPython it supports, when pyenv has one here.
    py39=$(ls -d "$(pyenv root 2>/dev/null || echo /nonexistent)"/versions/3.9*/bin/python3.9 2>/dev/null | tail -n 1 || true)
    if [ -n "$py39" ]; then
        "$py39" -m venv "$dir/venv39"
        "$dir/venv39/bin/python" -m pip install --quiet --disable-pip-version-check "$wheel" pytest==8.4.2 cloudpickle==3.1.2
        "$dir/venv39/bin/python" -m unittest discover --quiet -s tests/python_package
    else
        echo "wheel-test: no CPython 3.9 found (pyenv); the wheel was tested on $(python3 --version) only"
    fi
    echo "wheel-test: passed in $((SECONDS - start))s"

# The pinned maturin (for `wheel`, `wheel-test`).
_maturin:
    @test -x {{maturin_venv}}/bin/maturin || python3 -m venv {{maturin_venv}}
    @{{maturin_venv}}/bin/python -m pip install --quiet --disable-pip-version-check {{maturin_pin}}

# What CI runs.
ci: lint test wheel-test

# API docs.
docs:
    cargo doc --no-deps --document-private-items
