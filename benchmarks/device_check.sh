#!/usr/bin/env bash
# One check of a GPU for tf_lottery, in at most ~8 minutes, as JSON
# (benchmarks/device_check.py says what each section measures):
#
#   benchmarks/device_check.sh [OUT_DIR]
#
# OUT_DIR defaults to $OUT, else ./device_check_out; the report is
# OUT_DIR/device_check.json and the log OUT_DIR/device_check.log.
# Environment:
#   DEVICE_CHECK_MODE      auto (default: gpu if TensorFlow sees one), gpu or cpu
#                          (tiny shapes and steps: what the test suite runs)
#   DEVICE_CHECK_BUDGET_S  seconds for all sections (default 450); the whole
#                          script is stopped 60 s after that in any case
#   PYTHON                 the interpreter with tf_lottery's dependencies (default python3)
# Needs a CUDA build of the TensorFlow that setup.cfg pins (pip install -e . on
# the GPU machine); no dataset: inputs are synthetic or TFDS mock data.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-${OUT:-$root/device_check_out}}
mode=${DEVICE_CHECK_MODE:-auto}
budget=${DEVICE_CHECK_BUDGET_S:-450}
python=${PYTHON:-python3}

mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$root"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
export TF_CPP_MIN_LOG_LEVEL=2 PYTHONUNBUFFERED=1

if ! "$python" -c 'import tensorflow, tf_keras, tensorflow_datasets' 2>>"$out/device_check.log"; then
  echo "device_check: $python cannot import tensorflow, tf_keras and tensorflow_datasets;" \
    "install tf_lottery's dependencies (pip install -e .) or set PYTHON" >&2
  printf '{"error": "%s cannot import tensorflow, tf_keras and tensorflow_datasets"}\n' \
    "$python" >"$out/device_check.json"
  exit 2
fi

start=$SECONDS
status=0
timeout --signal=TERM --kill-after=15 "$((budget + 60))" \
  "$python" benchmarks/device_check.py --out="$out" --mode="$mode" --budget_s="$budget" \
  >>"$out/device_check.log" 2>&1 || status=$?
echo "device_check: exit $status after $((SECONDS - start)) s; report: $out/device_check.json" >&2
exit "$status"
