# shellcheck shell=bash
# Shared by the tpu_scripts: flags every script takes, dry runs, gcloud calls.
# Sourced, not run. Every command that touches the cloud goes through `run`,
# which prints it (shell-quoted: it can be pasted) and, unless --dry_run,
# runs it.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NAME="${TPU_NAME:-tf-lottery}"
ZONE="${TPU_ZONE:-europe-west4-a}"
PROJECT="${TPU_PROJECT:-}"
DRY_RUN=0
# Used by the scripts that source this file. The tildes are meant for the
# VM's shell, which expands them in the remote command lines.
# shellcheck disable=SC2034,SC2088
REMOTE_DIR='~/tf_lottery'
# shellcheck disable=SC2034,SC2088
LOG_FILE='~/tf_lottery_run.log'
# shellcheck disable=SC2034
COMMON_FLAGS="  --name=NAME        TPU VM name (default: \$TPU_NAME or tf-lottery)
  --zone=ZONE        zone (default: \$TPU_ZONE or europe-west4-a)
  --project=PROJECT  Google Cloud project (default: gcloud's configured one)
  --dry_run          print every command instead of running it"

die() {
  echo "$(basename "$0"): error: $*" >&2
  exit 2
}

# Consumes one flag shared by all scripts; returns 1 if $1 is not one of them.
common_flag() {
  case "$1" in
    --name=*) NAME="${1#*=}" ;;
    --zone=*) ZONE="${1#*=}" ;;
    --project=*) PROJECT="${1#*=}" ;;
    --dry_run) DRY_RUN=1 ;;
    *) return 1 ;;
  esac
}

# The flags that select the same VM, for scripts that call other scripts.
common_args() {
  local args=("--name=$NAME" "--zone=$ZONE")
  [[ -n "$PROJECT" ]] && args+=("--project=$PROJECT")
  [[ "$DRY_RUN" == 1 ]] && args+=(--dry_run)
  printf '%s\n' "${args[@]}"
}

# One argument as bash would need it typed: bare if safe, else single-quoted.
quote() {
  if [[ "$1" =~ ^[A-Za-z0-9_./:=@,+%-]+$ ]]; then
    printf '%s' "$1"
  else
    printf "'%s'" "${1//\'/\'\\\'\'}"
  fi
}

# Prints a command to stderr (as "+ cmd", like set -x) and runs it unless --dry_run.
run() {
  {
    printf '+'
    local arg
    for arg in "$@"; do
      printf ' '
      quote "$arg"
    done
    printf '\n'
  } >&2
  if [[ "$DRY_RUN" == 0 ]]; then
    "$@"
  fi
}

# gcloud compute tpus tpu-vm SUBCOMMAND NAME --zone=ZONE [--project=P] ARGS...
tpu_vm() {
  local subcommand="$1"
  shift
  local args=(gcloud compute tpus tpu-vm "$subcommand" "$NAME" "--zone=$ZONE")
  [[ -n "$PROJECT" ]] && args+=("--project=$PROJECT")
  run "${args[@]}" "$@"
}

# The state of VM $NAME (READY, PREEMPTED, ...), MISSING when it does not
# exist; a dry run shows the command and answers PREEMPTED.
vm_state() {
  if [[ "$DRY_RUN" == 1 ]]; then
    tpu_vm describe "--format=value(state)"
    echo PREEMPTED
  else
    tpu_vm describe "--format=value(state)" 2>/dev/null | tail -n 1 || echo MISSING
  fi
}

# Runs a bash command line on the VM's workers ("all" or a worker index).
on_vm() {
  local worker="$1" command="$2"
  tpu_vm ssh "--worker=$worker" "--command=$command"
}

require_gs() {
  [[ "$2" == gs://* ]] || die "--$1 must be a gs:// path (a recreated VM must find it), got '$2'"
}

# The Cloud TPU VM's lock (tools/resolve_platforms.py writes it from
# setup.cfg's ranges): the only place a TPU VM's versions are written.
# shellcheck disable=SC2034
TPU_LOCK=locks/tpu-vm.txt

# The version the TPU VM's lock holds for package $1 (e.g. tensorflow-tpu).
pinned() {
  sed -n "s/^$1==\\([0-9.]*\\)\$/\\1/p" "$ROOT/$TPU_LOCK" | head -n 1
}
