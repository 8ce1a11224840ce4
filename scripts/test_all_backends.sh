#!/usr/bin/env bash
# Runs the test suite once per Keras backend (TensorFlow, JAX, PyTorch).
# Usage: scripts/test_all_backends.sh [extra pytest args]
#   BACKENDS="jax torch" scripts/test_all_backends.sh   # a subset
#   PYTEST_MARK="" scripts/test_all_backends.sh         # include @pytest.mark.large
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
BACKENDS="${BACKENDS:-tensorflow jax torch}"
MARK="${PYTEST_MARK-not large}"
status=0
summary=""
for backend in $BACKENDS; do
  echo "=================== KERAS_BACKEND=$backend ==================="
  start=$(date +%s)
  if [ -n "$MARK" ]; then
    KERAS_BACKEND=$backend "$PYTHON" -m pytest -q --durations=10 -m "$MARK" "$@"
  else
    KERAS_BACKEND=$backend "$PYTHON" -m pytest -q --durations=10 "$@"
  fi
  rc=$?
  summary="$summary\n  $backend: exit $rc in $(( $(date +%s) - start )) s"
  [ $rc -ne 0 ] && status=1
done
printf "Per-backend results:$summary\n"
exit $status
