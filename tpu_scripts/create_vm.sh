#!/usr/bin/env bash
# Creates a Cloud TPU VM for tf_lottery (optionally spot or preemptible).
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ACCELERATOR_TYPE="${TPU_ACCELERATOR_TYPE:-v3-8}"
RUNTIME_VERSION="${TPU_RUNTIME_VERSION:-tpu-ubuntu2204-base}"
PROVISIONING=""

usage() {
  cat <<USAGE
Usage: $(basename "$0") [flags]
Creates the TPU VM. install.sh then puts tf_lottery and tensorflow-tpu on it.
  --accelerator_type=TYPE   e.g. v3-8, v4-8, v5litepod-8 (default: $ACCELERATOR_TYPE)
  --runtime_version=VERSION TPU software version (default: $RUNTIME_VERSION; the
                            matching tensorflow-tpu is pip-installed by install.sh)
  --spot                    a Spot VM: much cheaper, can be preempted at any time
  --preemptible             a preemptible VM (older kind; at most 24 hours)
$COMMON_FLAGS
USAGE
}

for arg in "$@"; do
  common_flag "$arg" && continue
  case "$arg" in
    --accelerator_type=*) ACCELERATOR_TYPE="${arg#*=}" ;;
    --runtime_version=*) RUNTIME_VERSION="${arg#*=}" ;;
    --spot) PROVISIONING="--spot" ;;
    --preemptible) PROVISIONING="--preemptible" ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown flag '$arg' (see --help)" ;;
  esac
done

args=("--accelerator-type=$ACCELERATOR_TYPE" "--version=$RUNTIME_VERSION")
[[ -n "$PROVISIONING" ]] && args+=("$PROVISIONING")
tpu_vm create "${args[@]}"
