#!/usr/bin/env bash
# Deletes the TPU VM (its local disk too; runs keep their state in gs://).
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<USAGE
Usage: $(basename "$0") [flags]
Deletes the TPU VM without asking.
$COMMON_FLAGS
USAGE
}

for arg in "$@"; do
  common_flag "$arg" && continue
  case "$arg" in
    -h | --help) usage; exit 0 ;;
    *) die "unknown flag '$arg' (see --help)" ;;
  esac
done
tpu_vm delete --quiet
