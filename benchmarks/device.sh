#!/usr/bin/env bash
# Every GPU and many-core row of the README in one call on a lent GPU machine
# (device time is short: a few minutes in all).
#
# Run from the repository root: bash benchmarks/device.sh [LOG_FOLDER]
# Where the machine lacks seisfacies' dependencies, put their wheels in .whl/
# first (the device tool's README says how); they install into /tmp/site.
# Each row has its own time limit, so one slow row cannot take the others' time.
set -u -o pipefail
logs=${1:-${OUT:-/tmp/seisfacies-device}}
mkdir -p "$logs"
export PYTHONUNBUFFERED=1
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile \
        --target /tmp/site . || exit 1
    export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$logs/gpu.txt"
python3 -c "import torch, seisfacies; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" \
    | tee -a "$logs/gpu.txt"

row() {  # row NAME SECONDS COMMAND...: one benchmark, its output in NAME.txt
    local name=$1 limit=$2
    shift 2
    echo "== $name: $*"
    local started=$SECONDS
    (cd benchmarks && timeout "$limit" python3 "$@") 2>&1 | tee "$logs/$name.txt"
    echo "== $name: exit ${PIPESTATUS[0]} after $((SECONDS - started)) s"
}

row train_fp32 100 train.py --device cuda --precision fp32
row train_bf16 90 train.py --device cuda --precision bf16
row predict 170 predict.py --device cuda --shape 256 256 384
row scaling 130 scaling.py --workers 1,2,4,8,16 --scales 1
