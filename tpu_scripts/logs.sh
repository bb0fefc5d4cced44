#!/usr/bin/env bash
# Streams the training log of the TPU VM (Ctrl-C stops streaming, not training).
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LINES=100
usage() {
  cat <<USAGE
Usage: $(basename "$0") [flags]
Follows $LOG_FILE on worker 0.
  --lines=N  lines of history to show first (default: $LINES)
$COMMON_FLAGS
USAGE
}

for arg in "$@"; do
  common_flag "$arg" && continue
  case "$arg" in
    --lines=*) LINES="${arg#*=}" ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown flag '$arg' (see --help)" ;;
  esac
done
on_vm 0 "tail -n $LINES -F $LOG_FILE"
