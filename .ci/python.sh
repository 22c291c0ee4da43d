#!/usr/bin/env bash
# Builds the Python extension from python/ into a fresh virtual environment
# the way a user would (`pip install ./python`) and runs its test suite.
#
#   .ci/python.sh            # venv in target/python-ci-venv
#   PYTHON=python3.11 VENV=/tmp/venv .ci/python.sh
#
# Needs Python >= 3.9 with the venv module, a Rust toolchain, and access to
# PyPI and crates.io. Exits non-zero if the build or any test fails, or if
# pytest collects no tests at all.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
venv="${VENV:-$root/target/python-ci-venv}"

echo "== python: creating $venv with $("$python" --version 2>&1)"
rm -rf "$venv"
"$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
"${pip[@]}" install --quiet --upgrade pip
"${pip[@]}" install --quiet "maturin>=1.7,<2" numpy "pytest>=8.2" "mypy>=1.18,<3"

echo "== python: pip install './python[ray]' (release build of the extension, with the ray extra)"
log="$(mktemp)"
if ! "${pip[@]}" install --verbose "./python[ray]" >"$log" 2>&1; then
    tail -n 80 "$log" >&2
    echo "== python: pip install './python[ray]' failed (full log: $log)" >&2
    exit 1
fi
grep -E "Built wheel|Successfully installed" "$log" || true
# One wheel for every CPython >= 3.9 on this platform (pyo3's abi3-py39).
if ! grep -qE "Built wheel.*cp39-abi3" "$log"; then
    echo "== python: the wheel is not an abi3 (cp39-abi3) wheel" >&2
    exit 1
fi
rm -f "$log"
"$venv/bin/python" -c "import swann, swann.hnswlib, swann.n2; print('swann', swann.__version__, 'imported from', swann.__file__)"

# The `ray` extra came with the package: swann.distributed's tests
# (tests/test_distributed.py) run instead of being skipped.
"$venv/bin/python" -c "import ray, ray.data, swann.distributed; print('ray', ray.__version__)"

echo "== python: pytest"
# Run from outside the source tree so the installed package is imported, not python/swann.
cd "$root/python/tests"
pytest_log="$(mktemp)"
set +e
"$venv/bin/python" -m pytest -q -p no:cacheprovider -rs . | tee "$pytest_log"
status=${PIPESTATUS[0]}
# The Ray tests must run here, not skip: a skip means the extra is broken.
if grep -qE "SKIPPED.*test_distributed" "$pytest_log"; then
    echo "== python: the Ray tests were skipped" >&2
    status=1
fi
rm -f "$pytest_log"
set -e
if [ "$status" -eq 5 ]; then
    echo "== python: pytest collected no tests" >&2
fi
if [ "$status" -ne 0 ]; then
    exit "$status"
fi

echo "== python: the stubs match the module (mypy.stubtest swann._swann)"
# From a folder outside the source tree, so the installed module is checked.
cd "$(mktemp -d)"
"$venv/bin/python" -m mypy.stubtest swann._swann
