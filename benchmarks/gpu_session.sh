#!/usr/bin/env bash
# The population run's GPU checks in one device call (issue #15: "ranking batches fill the
# device; report users/s"), prepared so that a session lent a GPU spends its minutes measuring.
#
# On the lent machine (its python3 has JAX with CUDA; carry the wheels it lacks, e.g. dm-haiku
# and typer, in .whl as the device README says):
#     run(command="bash benchmarks/gpu_session.sh", carry=[".whl"], timeout_s=570)
# Here, a smoke test of the script itself on the CPU (a few users, no nvidia-smi):
#     XFEED_SESSION_DEVICE=cpu XFEED_SESSION_USERS=64 PYTHON=.venv/bin/python \
#         OUT=/tmp/gpu-session bash benchmarks/gpu_session.sh
#
# Steps (each bounded by `timeout`; the log and JSON land in $OUT):
#  1. the machine: GPU, cores, versions, JAX's devices;
#  2. the GPU tests (`pytest -m gpu`: the CPU and the GPU serve the same feeds);
#  3. one process, warm, float32 products: users/s at 256 and 1,024 users per batch
#     (benchmarks.population_sweep; the first setting also compiles every shape);
#  4. several processes feeding the one GPU (`rank --users all --shard I/N`, N = 2, 4, 8, each
#     with its own --out), whole-command users/s and `nvidia-smi dmon` SM busy % meanwhile:
#     one process's Python and numpy (~9 ms/user on the host) starve the device; N processes
#     are N hosts' worth of pipeline feeding it.
set -u
OUT=${OUT:-/tmp/gpu-session}
mkdir -p "$OUT"
LOG=$OUT/gpu-session.log
DEVICE=${XFEED_SESSION_DEVICE:-gpu}
USERS=${XFEED_SESSION_USERS:-2000}
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
step() { echo "=== +${SECONDS}s $*" | tee -a "$LOG"; }

step env
{ nvidia-smi -L 2>&1 || true; nproc
  "$PY" -c 'import jax, numpy, sys; print(sys.version.split()[0], jax.__version__,
numpy.__version__, jax.devices())'; } 2>&1 | tee -a "$LOG"

step gpu-tests
if [ "$DEVICE" = gpu ]; then
    JAX_PLATFORMS= timeout 120 "$PY" -m pytest -q -m gpu -p no:cacheprovider 2>&1 | tail -4 |
        tee -a "$LOG"
fi

step "one process, warm sweep ($USERS users)"
timeout 200 "$PY" -m benchmarks.population_sweep --configs 256x2,1024x2 --users "$USERS" \
    --out "$OUT/sweep.json" 2>&1 | grep -v "━" | tee -a "$LOG"

users_file=$OUT/users.txt
"$PY" -c 'import sys; from pipeline.population import world_user_ids
print("\n".join(map(str, world_user_ids(sys.argv[1])[: int(sys.argv[2])])))' \
    data/samples/world "$USERS" > "$users_file"
for n in 2 4 8; do
    if [ "$SECONDS" -gt 400 ]; then  # keep the whole call inside a device call's 10 minutes
        step "$n processes: skipped (${SECONDS}s used)"
        continue
    fi
    step "$n processes on one device ($USERS users)"
    dmon=""
    if [ "$DEVICE" = gpu ]; then
        nvidia-smi dmon -s u -d 1 > "$OUT/dmon-$n.txt" 2>&1 &
        dmon=$!
    fi
    start=$SECONDS
    for ((i = 0; i < n; i++)); do
        rm -rf "/tmp/gpu-shard-$n-$i"
        timeout 120 "$PY" -c 'from xfeed_cli.entry import run; run()' rank --users "$users_file" \
            --shard "$i/$n" --out "/tmp/gpu-shard-$n-$i" --device "$DEVICE" > /dev/null 2>&1 &
    done
    wait $(jobs -p | grep -v "^${dmon:-x}$")
    wall=$((SECONDS - start))
    [ -n "$dmon" ] && kill "$dmon" 2>/dev/null
    "$PY" - "$n" "$wall" "$USERS" "$OUT/dmon-$n.txt" <<'EOF' 2>&1 | tee -a "$LOG"
import json, pathlib, sys
n, wall, users, dmon = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
done = [json.loads(pathlib.Path(f"/tmp/gpu-shard-{n}-{i}/manifest.json").read_text())
        for i in range(n) if pathlib.Path(f"/tmp/gpu-shard-{n}-{i}/manifest.json").exists()]
ranked = sum(m["counts"]["users"] for m in done)
steady = sum(m["time"]["users_per_s"] for m in done)
sm = []
if pathlib.Path(dmon).exists():
    for line in pathlib.Path(dmon).read_text().splitlines():
        parts = line.split()
        if parts and parts[0].isdigit() and len(parts) > 1 and parts[1].isdigit():
            sm.append(int(parts[1]))
busy = f"SM busy mean {sum(sm) / len(sm):.1f} % over {len(sm)} s" if sm else "no dmon samples"
print(f"{n} processes: {len(done)}/{n} finished, {ranked}/{users} users in {wall} s whole "
      f"commands ({ranked / max(wall, 1):.1f} users/s); sum of the runs' own users/s "
      f"{steady:.1f}; {busy}")
EOF
done
step end
