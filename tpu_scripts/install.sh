#!/usr/bin/env bash
# Copies this checkout to the TPU VM and installs it with the matching tensorflow-tpu.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TF_VERSION="$(pinned_tensorflow)"
LIBTPU_INDEX="https://storage.googleapis.com/libtpu-tf-releases/index.html"

usage() {
  cat <<USAGE
Usage: $(basename "$0") [flags]
Packs this checkout (without .git, .venv, runs), copies it to every worker
of the VM, and installs it into $REMOTE_DIR/.venv: the package's pinned
dependencies, then tensorflow-tpu==$TF_VERSION (setup.cfg's TensorFlow pin)
in place of the CPU tensorflow wheel.
  --tf_version=X.Y.Z  tensorflow-tpu version (default: $TF_VERSION)
$COMMON_FLAGS
USAGE
}

for arg in "$@"; do
  common_flag "$arg" && continue
  case "$arg" in
    --tf_version=*) TF_VERSION="${arg#*=}" ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown flag '$arg' (see --help)" ;;
  esac
done
[[ -n "$TF_VERSION" ]] || die "no tensorflow pin found in $ROOT/setup.cfg; pass --tf_version"

TARBALL="${TMPDIR:-/tmp}/tf_lottery-$NAME.tar.gz"
run tar -czf "$TARBALL" -C "$ROOT" --exclude=./.git --exclude=./.venv --exclude=./runs .
scp_args=(gcloud compute tpus tpu-vm scp "$TARBALL" "$NAME:tf_lottery.tar.gz"
  "--zone=$ZONE" --worker=all)
[[ -n "$PROJECT" ]] && scp_args+=("--project=$PROJECT")
run "${scp_args[@]}"

# tf-keras and TFMOT depend on the CPU "tensorflow" wheel: install everything
# as pinned, then swap that wheel for tensorflow-tpu (same Python package).
on_vm all "set -e
rm -rf $REMOTE_DIR && mkdir -p $REMOTE_DIR && tar -xzf ~/tf_lottery.tar.gz -C $REMOTE_DIR
python3 -m venv $REMOTE_DIR/.venv
$REMOTE_DIR/.venv/bin/pip install -q --upgrade pip
$REMOTE_DIR/.venv/bin/pip install -q -e $REMOTE_DIR
$REMOTE_DIR/.venv/bin/pip uninstall -q -y tensorflow
$REMOTE_DIR/.venv/bin/pip install -q tensorflow-tpu==$TF_VERSION -f $LIBTPU_INDEX
$REMOTE_DIR/.venv/bin/python -c 'import tensorflow as tf; print(\"tensorflow-tpu\", tf.__version__)'"
