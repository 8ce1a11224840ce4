#!/usr/bin/env bash
# Runs the test suite once per Keras backend (TensorFlow, JAX, PyTorch).
# Usage: scripts/test_all_backends.sh [--install] [extra pytest args]
#   --install                                           # first install the package and its
#                                                       # test extras into $PYTHON's environment
#   BACKENDS="jax torch" scripts/test_all_backends.sh   # a subset
#   PYTEST_MARK="" scripts/test_all_backends.sh         # include @pytest.mark.large
#   scripts/test_all_backends.sh tests/test_losses.py   # one file (any pytest arguments)
#   PYTEST_WORKERS=0 scripts/test_all_backends.sh       # no parallel workers
#   KERNELS_OFF_BACKENDS="torch tensorflow" scripts/...  # which backends run the suite
#                                                       # a second time with the kernels off
#                                                       # (KERAS_AHBF_KERNELS=0; default
#                                                       # torch, the backend with most
#                                                       # kernels; "" for none)
#
# With pytest-xdist installed (a test extra), each backend's tests run in
# PYTEST_WORKERS processes (default 2, the CI machine's cores), a test file
# per process at a time (--dist loadfile: a file's fixtures are built once).
#
# --install runs `pip install -e ".[test]"` (pytest, jax[cpu], torch==2.13.0).
# The pinned torch comes from a folder of wheels when one exists (WHEELS,
# default /opt/wheels, passed as --find-links); otherwise, if torch 2.13.0 is
# not installed yet, its CPU build is installed first from TORCH_INDEX_URL
# (default https://download.pytorch.org/whl/cpu; set it empty to let pip pick
# torch from its usual index, which on Linux x86-64 is the multi-GB CUDA build).
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$(command -v python || command -v python3)}"
BACKENDS="${BACKENDS:-tensorflow jax torch}"
KERNELS_OFF_BACKENDS="${KERNELS_OFF_BACKENDS-torch}"
MARK="${PYTEST_MARK-not large}"
WORKERS="${PYTEST_WORKERS-2}"
TORCH_VERSION="2.13.0"   # keep equal to the pin in pyproject.toml

install() {
  local wheels="${WHEELS:-/opt/wheels}"
  local torch_index="${TORCH_INDEX_URL-https://download.pytorch.org/whl/cpu}"
  local find_links=()
  "$PYTHON" -m pip install --quiet --upgrade pip || return 1
  if [ -d "$wheels" ]; then
    find_links=(--find-links "$wheels")
  elif [ -n "$torch_index" ] && [ "$("$PYTHON" -c 'import importlib.metadata as m
try:
    print(m.version("torch").split("+")[0])
except m.PackageNotFoundError:
    pass' 2>/dev/null)" != "$TORCH_VERSION" ]; then
    echo "Installing the CPU build of torch==$TORCH_VERSION from $torch_index"
    "$PYTHON" -m pip install --quiet "torch==$TORCH_VERSION" --index-url "$torch_index" || return 1
  fi
  "$PYTHON" -m pip install --quiet "${find_links[@]}" -e ".[test]" || return 1
  "$PYTHON" -m pip list 2>/dev/null \
    | grep -iE '^(keras|tensorflow-cpu|tensorflow|jax|jaxlib|torch|tensorflow-datasets|pytest) '
  return 0
}

if [ "${1-}" = "--install" ]; then
  shift
  install || { echo "scripts/test_all_backends.sh: --install failed" >&2; exit 1; }
fi

parallel=()
if [ -n "$WORKERS" ] && [ "$WORKERS" != "0" ] && "$PYTHON" -c "import xdist" 2>/dev/null; then
  parallel=(-n "$WORKERS" --dist loadfile)
fi

status=0
summary=""
run_suite() {  # $1 backend, $2 KERAS_AHBF_KERNELS, $3 label; then pytest args
  local backend=$1 kernels=$2 label=$3
  shift 3
  echo "=================== KERAS_BACKEND=$backend KERAS_AHBF_KERNELS=$kernels ==================="
  local start
  start=$(date +%s)
  if [ -n "$MARK" ]; then
    KERAS_BACKEND=$backend KERAS_AHBF_KERNELS=$kernels "$PYTHON" -m pytest -q --durations=10 "${parallel[@]}" -m "$MARK" "$@"
  else
    KERAS_BACKEND=$backend KERAS_AHBF_KERNELS=$kernels "$PYTHON" -m pytest -q --durations=10 "${parallel[@]}" "$@"
  fi
  local rc=$?
  summary="$summary\n  $label: exit $rc in $(( $(date +%s) - start )) s"
  [ $rc -ne 0 ] && status=1
}
for backend in $BACKENDS; do
  run_suite "$backend" 1 "$backend" "$@"
done
for backend in $KERNELS_OFF_BACKENDS; do
  case " $BACKENDS " in *" $backend "*) run_suite "$backend" 0 "$backend (kernels off)" "$@" ;; esac
done
printf "Per-backend results:$summary\n"
exit $status
