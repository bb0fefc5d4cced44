#!/usr/bin/env bash
# A Ray cluster over several single-host TPU VMs, running one flagfile's task graph.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HERE="$(dirname "${BASH_SOURCE[0]}")"
VMS=2
RAY_PORT=6379
POLL_SECONDS=300
ACCELERATOR_TYPE="${TPU_ACCELERATOR_TYPE:-v3-8}"
CREATE_ARGS=()
WORKER_PROVISIONING=()
TASK_RESOURCES=""
FLAGFILE=""
DATA_DIR=""
MODEL_DIR=""
DOWN=0
EXTRA=()
RAY="$REMOTE_DIR/.venv/bin/ray"

usage() {
  cat <<USAGE
Usage: $(basename "$0") --vms=N --flagfile=flags/X.cfg --data_dir=gs://... --model_dir=gs://... [flags] [-- tf_lottery flags]
Brings up N single-host TPU VMs named NAME-0 ... NAME-(N-1) as one Ray
cluster (NAME-0 is the head; it runs tasks too) and runs the flagfile's
task graph on it: python -m tf_lottery.main --executor=ray on the head, one
task per VM at a time (--task_resources, default: all the VM's chips).
Every --poll_seconds, until --model_dir/results.json says complete:
a VM that is preempted or gone is deleted, created again, installed and
joined to the cluster (a spot worker rejoins after preemption; the task it
ran is retried and resumes from its own checkpoint in --model_dir); if the
head was lost, or the driver is not running, the driver is started again
and resumes the graph (finished tasks are never rerun). The head is created
without --spot/--preemptible, so that one preemption does not stop them all.
The driver's log: logs.sh --name=NAME-0.
With --dry_run, prints the commands of one pass over preempted VMs.
  --vms=N             number of TPU VMs, head included (default: $VMS)
  --flagfile, --data_dir, --model_dir   as run_flagfile.sh (gs:// paths)
  --task_resources=R  Ray resources of one task (default: TPU:<chips of one VM>)
  --accelerator_type, --runtime_version, --spot, --preemptible   as create_vm.sh
  --poll_seconds=N    seconds between checks (default: $POLL_SECONDS)
  --down              delete the cluster's VMs and stop
  -- FLAGS...         further tf_lottery flags
$COMMON_FLAGS
USAGE
}

while [[ $# -gt 0 ]]; do
  arg="$1"
  shift
  common_flag "$arg" && continue
  case "$arg" in
    --vms=*) VMS="${arg#*=}" ;;
    --flagfile=*) FLAGFILE="${arg#*=}" ;;
    --data_dir=*) DATA_DIR="${arg#*=}" ;;
    --model_dir=*) MODEL_DIR="${arg#*=}" ;;
    --task_resources=*) TASK_RESOURCES="${arg#*=}" ;;
    --accelerator_type=*) ACCELERATOR_TYPE="${arg#*=}"; CREATE_ARGS+=("$arg") ;;
    --runtime_version=*) CREATE_ARGS+=("$arg") ;;
    --spot | --preemptible) WORKER_PROVISIONING=("$arg") ;;
    --poll_seconds=*) POLL_SECONDS="${arg#*=}" ;;
    --down) DOWN=1 ;;
    --) EXTRA=("$@"); break ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown flag '$arg' (see --help)" ;;
  esac
done
[[ "$VMS" =~ ^[1-9][0-9]*$ ]] || die "--vms must be a positive integer, got '$VMS'"
BASE="$NAME"

# The flags that select VM i, for the scripts this one calls.
vm_args() {
  local args=("--name=$BASE-$1" "--zone=$ZONE")
  [[ -n "$PROJECT" ]] && args+=("--project=$PROJECT")
  [[ "$DRY_RUN" == 1 ]] && args+=(--dry_run)
  printf '%s\n' "${args[@]}"
}

if [[ "$DOWN" == 1 ]]; then
  for ((i = 0; i < VMS; i++)); do
    mapfile -t THIS < <(vm_args "$i")
    bash "$HERE/delete_vm.sh" "${THIS[@]}" || true
  done
  exit 0
fi

[[ -n "$FLAGFILE" ]] || die "--flagfile is required"
[[ -f "$ROOT/$FLAGFILE" ]] || die "--flagfile=$FLAGFILE does not exist in $ROOT"
require_gs data_dir "$DATA_DIR"
require_gs model_dir "$MODEL_DIR"

# Ray counts TPU chips. Cloud TPU names count TensorCores for v2, v3, v4 and
# v5p (two per chip) and chips for v5e (v5litepod) and v6e.
chips() {
  local type="$1" n="${1##*-}"
  case "$type" in
    v5litepod-* | v6e-*) echo "$n" ;;
    *) echo $((n / 2)) ;;
  esac
}
[[ -n "$TASK_RESOURCES" ]] || TASK_RESOURCES="TPU:$(chips "$ACCELERATOR_TYPE")"

is_complete() {
  # (In a dry run nothing is read: not complete.)
  run gcloud storage cat --verbosity=none "$MODEL_DIR/results.json" \
    | grep -q '"status": *"complete"'
}

state_of() {
  NAME="$BASE-$1"
  vm_state
}

head_ip() {
  NAME="$BASE-0"
  if [[ "$DRY_RUN" == 1 ]]; then
    tpu_vm describe "--format=value(networkEndpoints[0].ipAddress)"
    echo HEAD_IP
  else
    tpu_vm describe "--format=value(networkEndpoints[0].ipAddress)" | tail -n 1
  fi
}

# Deletes, creates and installs VM $1 (the head on demand, workers as asked).
recreate() {
  local i="$1" provisioning=()
  [[ "$i" != 0 ]] && provisioning=("${WORKER_PROVISIONING[@]}")
  mapfile -t THIS < <(vm_args "$i")
  bash "$HERE/delete_vm.sh" "${THIS[@]}" || true
  bash "$HERE/create_vm.sh" "${THIS[@]}" "${CREATE_ARGS[@]}" "${provisioning[@]}"
  bash "$HERE/install.sh" "${THIS[@]}"
}

# Ray on VM $1: the head, or a worker that joins it. Ray's token
# authentication needs the head's token on every node: copied head -> worker
# through this machine, never printed.
start_ray() {
  local i="$1"
  NAME="$BASE-$i"
  if [[ "$i" == 0 ]]; then
    on_vm 0 "$RAY stop --force > /dev/null 2>&1; $RAY start --head --port=$RAY_PORT --disable-usage-stats --include-dashboard=false"
    return
  fi
  NAME="$BASE-0"
  local token_out=(gcloud compute tpus tpu-vm ssh "$NAME" "--zone=$ZONE" --worker=0
    "--command=cat ~/.ray/auth_token")
  NAME="$BASE-$i"
  local token_in=(gcloud compute tpus tpu-vm ssh "$NAME" "--zone=$ZONE" --worker=0
    "--command=mkdir -p ~/.ray && umask 077 && cat > ~/.ray/auth_token")
  if [[ -n "$PROJECT" ]]; then
    token_out+=("--project=$PROJECT")
    token_in+=("--project=$PROJECT")
  fi
  # Printed one after the other (a pipe of two `run`s would interleave them).
  local dry="$DRY_RUN"
  DRY_RUN=1
  run "${token_out[@]}"
  run "${token_in[@]}"
  DRY_RUN="$dry"
  if [[ "$DRY_RUN" == 0 ]]; then
    "${token_out[@]}" | "${token_in[@]}"
  fi
  on_vm 0 "$RAY stop --force > /dev/null 2>&1; $RAY start --address=$HEAD_IP:$RAY_PORT --disable-usage-stats"
}

start_driver() {
  NAME="$BASE-0"
  local main=(.venv/bin/python -m tf_lottery.main "--flagfile=$FLAGFILE" --executor=ray
    "--ray_address=auto" "--task_resources=$TASK_RESOURCES" --strategy=tpu --tpu=local
    "--data_dir=$DATA_DIR" "--model_dir=$MODEL_DIR" "${EXTRA[@]}")
  local quoted
  quoted="$(printf ' %q' "${main[@]}")"
  on_vm 0 "cd $REMOTE_DIR && nohup${quoted} >> $LOG_FILE 2>&1 < /dev/null &"
}

driver_running() {
  NAME="$BASE-0"
  # The bracket keeps pgrep from matching the remote shell running it.
  on_vm 0 "pgrep -f 'tf_lottery[.]main' > /dev/null"
}

while true; do
  if is_complete; then
    echo "$(basename "$0"): $MODEL_DIR is complete." >&2
    break
  fi
  head_lost=0
  HEAD_IP=""
  for ((i = 0; i < VMS; i++)); do
    state="$(state_of "$i")"
    case "$state" in
      READY)
        # Workers of a lost head join the new one.
        [[ "$head_lost" == 1 ]] || continue
        ;;
      PREEMPTED | TERMINATED | STOPPED | MISSING | "")
        echo "$(basename "$0"): VM $BASE-$i is ${state:-MISSING}; recreating it." >&2
        recreate "$i"
        [[ "$i" == 0 ]] && head_lost=1
        ;;
      *)
        echo "$(basename "$0"): VM $BASE-$i is $state; waiting." >&2
        continue
        ;;
    esac
    [[ -n "$HEAD_IP" ]] || HEAD_IP="$(head_ip)"
    start_ray "$i"
  done
  if [[ "$head_lost" == 1 ]] || ! driver_running; then
    start_driver
  fi
  [[ "$DRY_RUN" == 1 ]] && break
  sleep "$POLL_SECONDS"
done
