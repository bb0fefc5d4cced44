#!/usr/bin/env bash
# Keeps a run going on a spot/preemptible TPU VM until its results say complete.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HERE="$(dirname "${BASH_SOURCE[0]}")"
POLL_SECONDS=300
CREATE_ARGS=()
RUN_ARGS=()
MODEL_DIR=""

usage() {
  cat <<USAGE
Usage: $(basename "$0") --flagfile=... --data_dir=gs://... --model_dir=gs://... [flags]
Every --poll_seconds: stops when --model_dir/results.json says complete;
if the VM was preempted (or is gone) it is deleted, created again, installed
and the run restarted -- it resumes from its last checkpoint in --model_dir;
if the VM is up but the run is not running, the run is restarted.
With --dry_run, prints the commands of one check of a preempted VM.
  --poll_seconds=N    seconds between checks (default: $POLL_SECONDS)
  create_vm.sh flags: --accelerator_type, --runtime_version, --spot, --preemptible
  run_flagfile.sh flags: --flagfile, --data_dir, --model_dir
$COMMON_FLAGS
USAGE
}

for arg in "$@"; do
  common_flag "$arg" && continue
  case "$arg" in
    --poll_seconds=*) POLL_SECONDS="${arg#*=}" ;;
    --accelerator_type=* | --runtime_version=* | --spot | --preemptible) CREATE_ARGS+=("$arg") ;;
    --model_dir=*) MODEL_DIR="${arg#*=}"; RUN_ARGS+=("$arg") ;;
    --flagfile=* | --data_dir=*) RUN_ARGS+=("$arg") ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown flag '$arg' (see --help)" ;;
  esac
done
require_gs model_dir "$MODEL_DIR"
mapfile -t SAME_VM < <(common_args)

is_complete() {
  # (In a dry run nothing is read: not complete.)
  run gcloud storage cat --verbosity=none "$MODEL_DIR/results.json" \
    | grep -q '"status": *"complete"'
}

recreate_and_run() {
  bash "$HERE/delete_vm.sh" "${SAME_VM[@]}" || true
  bash "$HERE/create_vm.sh" "${SAME_VM[@]}" "${CREATE_ARGS[@]}"
  bash "$HERE/install.sh" "${SAME_VM[@]}"
  bash "$HERE/run_flagfile.sh" "${SAME_VM[@]}" "${RUN_ARGS[@]}"
}

while true; do
  if is_complete; then
    echo "$(basename "$0"): $MODEL_DIR is complete." >&2
    break
  fi
  state="$(vm_state)"
  case "$state" in
    READY)
      # The bracket keeps pgrep from matching the remote shell running it.
      if ! on_vm 0 "pgrep -f 'tf_lottery[.]main' > /dev/null"; then
        bash "$HERE/run_flagfile.sh" "${SAME_VM[@]}" "${RUN_ARGS[@]}"
      fi
      ;;
    PREEMPTED | TERMINATED | STOPPED | MISSING | "")
      echo "$(basename "$0"): VM $NAME is ${state:-MISSING}; recreating it and resuming." >&2
      recreate_and_run
      ;;
    *) echo "$(basename "$0"): VM $NAME is $state; waiting." >&2 ;;
  esac
  [[ "$DRY_RUN" == 1 ]] && break
  sleep "$POLL_SECONDS"
done
