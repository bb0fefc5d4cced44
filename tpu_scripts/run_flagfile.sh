#!/usr/bin/env bash
# Starts (or resumes) a tf_lottery flagfile on the TPU VM, detached from the ssh session.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

FLAGFILE=""
DATA_DIR=""
MODEL_DIR=""
FOLLOW=0
EXTRA=()

usage() {
  cat <<USAGE
Usage: $(basename "$0") --flagfile=flags/X.cfg --data_dir=gs://... --model_dir=gs://... [flags] [-- tf_lottery flags]
Runs python -m tf_lottery.main with --strategy=tpu --tpu=local on worker 0,
appending its output to $LOG_FILE. All state lives in --model_dir, so running
the same command again (e.g. after a preemption) resumes the run, and a
finished run is left untouched.
  --flagfile=PATH     recipe, relative to the repository (e.g. flags/resnet50_imagenet.cfg)
  --data_dir=gs://..  TFDS data_dir holding the prepared dataset
  --model_dir=gs://.. where the run's checkpoints and results go
  --follow            stream the log after starting (logs.sh does it later)
  -- FLAGS...         further tf_lottery flags, e.g. -- --precision=float32
$COMMON_FLAGS
USAGE
}

while [[ $# -gt 0 ]]; do
  arg="$1"
  shift
  common_flag "$arg" && continue
  case "$arg" in
    --flagfile=*) FLAGFILE="${arg#*=}" ;;
    --data_dir=*) DATA_DIR="${arg#*=}" ;;
    --model_dir=*) MODEL_DIR="${arg#*=}" ;;
    --follow) FOLLOW=1 ;;
    --) EXTRA=("$@"); break ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown flag '$arg' (see --help)" ;;
  esac
done
[[ -n "$FLAGFILE" ]] || die "--flagfile is required"
[[ -f "$ROOT/$FLAGFILE" ]] || die "--flagfile=$FLAGFILE does not exist in $ROOT"
require_gs data_dir "$DATA_DIR"
require_gs model_dir "$MODEL_DIR"

main=(.venv/bin/python -m tf_lottery.main "--flagfile=$FLAGFILE" --strategy=tpu --tpu=local
  "--data_dir=$DATA_DIR" "--model_dir=$MODEL_DIR" "${EXTRA[@]}")
quoted="$(printf ' %q' "${main[@]}")"
on_vm 0 "cd $REMOTE_DIR && nohup${quoted} >> $LOG_FILE 2>&1 < /dev/null &"
if [[ "$FOLLOW" == 1 ]]; then
  on_vm 0 "tail -n 100 -F $LOG_FILE"
fi
