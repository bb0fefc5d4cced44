#!/usr/bin/env bash
# Copies this checkout to the TPU VM and installs the package's TPU set.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TPU_TF_VERSION="$(pinned tensorflow-tpu)"

usage() {
  cat <<USAGE
Usage: $(basename "$0") [flags]
Packs this checkout (without .git, .venv, runs), copies it to every worker
of the VM, and installs it into $REMOTE_DIR/.venv with the TPU VM's lock
(pip install -c $TPU_LOCK -e '.[tpu,ray]': exact versions, among them
tensorflow-tpu==$TPU_TF_VERSION and libtpu==$(pinned libtpu)). tensorflow-tpu
then replaces the CPU tensorflow wheel that tf-keras and TFMOT pull in, and
tpu_scripts/check_tpu.py proves that TensorFlow sees the TPU.
Every version comes from $TPU_LOCK; write it anew with
tools/resolve_platforms.py --write (CI checks that it still resolves).
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
[[ -n "$TPU_TF_VERSION" ]] || die "no tensorflow-tpu in $ROOT/$TPU_LOCK"

TARBALL="${TMPDIR:-/tmp}/tf_lottery-$NAME.tar.gz"
run tar -czf "$TARBALL" -C "$ROOT" --exclude=./.git --exclude=./.venv --exclude=./runs .
scp_args=(gcloud compute tpus tpu-vm scp "$TARBALL" "$NAME:tf_lottery.tar.gz"
  "--zone=$ZONE" --worker=all)
[[ -n "$PROJECT" ]] && scp_args+=("--project=$PROJECT")
run "${scp_args[@]}"

# tf-keras and TFMOT depend on the CPU "tensorflow" wheel, which owns the same
# files as tensorflow-tpu: install the TPU set, remove the CPU wheel, then put
# back the tensorflow-tpu files its removal deleted.
PIP="$REMOTE_DIR/.venv/bin/pip"
on_vm all "set -e
rm -rf $REMOTE_DIR && mkdir -p $REMOTE_DIR && tar -xzf ~/tf_lottery.tar.gz -C $REMOTE_DIR
python3 -m venv $REMOTE_DIR/.venv
$PIP install -q --upgrade pip
$PIP install -q -c $REMOTE_DIR/$TPU_LOCK -e \"${REMOTE_DIR}[tpu,ray]\"
$PIP uninstall -q -y tensorflow
$PIP install -q --no-deps --force-reinstall tensorflow-tpu==$TPU_TF_VERSION
$REMOTE_DIR/.venv/bin/python $REMOTE_DIR/tpu_scripts/check_tpu.py"
