#!/usr/bin/env bash
# The Python package (python/, issue 14): formats and lints its Rust extension, builds the
# wheel with maturin, installs it into a fresh venv, and runs
#   1. CPython's own Lib/test/test_poplib.py against pop3.poplib (every test must pass);
#   2. the pytest suite: the scripted server, and the private Dovecot (POP3_INTEROP and the
#      POP3_DOVECOT_* variables of .ci/run; with POP3_INTEROP=required an unreachable
#      Dovecot fails);
#   3. mypy's stubtest: the .pyi stubs match the installed package;
#   4. a smoke run of pop3-bench's Python clients (py-pop3, py-poplib) on tiny workloads,
#      each checked against the server's byte count.
# Idempotent: installs what is missing (the Debian packages for venv and the standard
# library's tests when the system Python lacks them, maturin and pytest in a tools venv).
#
#   bash .ci/python.sh      (from anywhere; called by .ci/run; PYTHON=... to choose the Python)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

PYTHON=${PYTHON:-python3}
runroot=${POP3_RUNROOT:-/tmp/pop3-run}
tools=$runroot/py-tools
target_dir=${CARGO_TARGET_DIR:-$PWD/target}
export CARGO_TARGET_DIR=$target_dir
export PYO3_PYTHON=${PYO3_PYTHON:-$(command -v "$PYTHON")}

pyver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
echo "python: $("$PYTHON" -c 'import sys; print(sys.executable, sys.version.split()[0])')"

# The system Python of Debian ships venv and the standard library's tests separately.
if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1 && command -v apt-get >/dev/null; then
    apt-get install -y "python$pyver-venv" || apt-get install -y python3-venv
fi
if ! "$PYTHON" -c 'import test.test_poplib' >/dev/null 2>&1 && command -v apt-get >/dev/null; then
    dpkg -s "libpython$pyver-testsuite" >/dev/null 2>&1 || apt-get install -y "libpython$pyver-testsuite"
fi
"$PYTHON" -c 'import test.test_poplib' >/dev/null

# maturin, pytest and mypy (for stubtest), once.
if [ ! -x "$tools/bin/maturin" ] || [ ! -x "$tools/bin/pytest" ] || [ ! -x "$tools/bin/mypy" ]; then
    "$PYTHON" -m venv "$tools"
    "$tools/bin/pip" install --quiet --upgrade "maturin>=1.5,<2" "pytest>=7" "mypy>=1.10"
fi
"$tools/bin/maturin" --version

# The extension's Rust: not a workspace member (see python/Cargo.toml), so checked here.
cargo fmt --manifest-path python/Cargo.toml --check
cargo clippy --manifest-path python/Cargo.toml --all-targets -- -D warnings

wheels=$(mktemp -d "${TMPDIR:-/tmp}/pop3-wheel.XXXXXX")
venv=$(mktemp -d "${TMPDIR:-/tmp}/pop3-venv.XXXXXX")
trap 'rm -rf "$wheels" "$venv"' EXIT
"$tools/bin/maturin" build --release --manifest-path python/Cargo.toml -i "$PYTHON" --out "$wheels"

"$PYTHON" -m venv "$venv"
"$venv/bin/pip" install --quiet "$wheels"/pop3-*.whl
# pytest from the tools venv, importing the package from the test venv.
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

# Run from outside the source tree, so `import pop3` is the installed wheel.
cd "$wheels"
"$venv/bin/python" "$root/python/tests/run_cpython_poplib.py"
PYTHONPATH="$site" "$venv/bin/python" -c 'import pop3, sys; assert "site-packages" in pop3.__file__, pop3.__file__'
# The test kit's scripted server as a program, for python/tests/test_kit_server.py.
cargo build --quiet --manifest-path "$root/Cargo.toml" -p pop3-scripted-server --bin pop3-scripted-server
export POP3_SCRIPTED_SERVER="$target_dir/debug/pop3-scripted-server"
PYTHONPATH="$site" "$tools/bin/python" -m pytest -q -p no:cacheprovider "$root/python/tests"
# The type stubs match the installed package (every name, signature and class).
PYTHONPATH="$site" "$tools/bin/python" -m mypy.stubtest pop3 \
    --allowlist "$root/python/tests/stubtest-allowlist.txt"

# pop3-bench's Python clients run and receive the whole mailbox (not how fast: BENCHMARKS.md).
cd "$root"
cargo build --release -p pop3-bench
POP3_BENCH_PYTHON="$venv/bin/python" timeout 120 "$target_dir/release/pop3-bench" run \
    --workloads 50:4K:2,2:1M --clients py-pop3,py-poplib \
    --reps 1 --timeout 30 --require-all --out "$wheels/bench" >"$wheels/bench.log" 2>&1 \
    || { cat "$wheels/bench.log"; exit 1; }
grep '^| [0-9]' "$wheels/bench.log"
