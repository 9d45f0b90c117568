#!/usr/bin/env bash
# The GPU measurements of the performance issue in one call of at most ~10 minutes, for a lent GPU
# machine where device time is short:
#
#   bash benchmarks/gpu_suite.sh        # results under $OUT (default gpu_results/)
#
# The device tool brings back at most 8 files, so there it ran as
#   R=$OUT; OUT=/tmp/gr bash benchmarks/gpu_suite.sh; tar -czf $R/gpu_results.tgz -C /tmp/gr .
# with carry [".gpu/whl"].
#
# 1. Compile: bench_train --compile-only for the four configs (benchmark / paper256, float32 /
#    bfloat16) and paper256 float32 in rounds of 4 (config.device_batch: its speed and memory),
#    all at once into one persistent compilation cache. Compiling is CPU work (16 cores there)
#    plus XLA's conv autotuner on the GPU; in parallel it costs about one compile's wall time,
#    and each compile time it reports is inflated by the sharing. The autotuner stays on:
#    without it (--xla_gpu_autotune_level=0) the step ran 73x slower on the H200.
# 2. Time: bench_train and bench_sample one at a time, the GPU to themselves, loading the
#    programs from that cache.
#
# Each run has its own time limit and writes NAME.json and NAME.log under $OUT; summary.txt
# says which finished. A run not started by BUDGET_S seconds (default 480) is skipped.
# A GPU image without ml-collections installs the wheels in .gpu/whl/ (download them here:
# pip download --no-deps --only-binary=:all: -d .gpu/whl ml-collections==1.1.0).
set -u
out=${OUT:-gpu_results}
budget=${BUDGET_S:-480}
mkdir -p "$out"
if ! python3 -c "import ml_collections" 2> /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-cache-dir --target /tmp/site .gpu/whl/*.whl
fi
export PYTHONPATH=$PWD:/tmp/site PYTHONUNBUFFERED=1
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-/tmp/stylejax_jax_cache}
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0
paper256=(--resolution 256 --channel-base 16384 --channel-max 512 --mapping 8 --batch 8)

bench() {  # NAME LIMIT_S COMMAND...: one run under its limit, skipped past the budget
  local name=$1 limit=$2 start=$SECONDS status
  shift 2
  if (( SECONDS + 20 > budget )); then
    echo "$name: skipped, ${SECONDS} s of the ${budget} s budget used" | tee -a "$out/summary.txt"
    return
  fi
  timeout "$limit" "$@" --json "$out/$name.json" > "$out/$name.log" 2>&1
  status=$?
  echo "$name: exit $status after $((SECONDS - start)) s (limit $limit s)" | tee -a "$out/summary.txt"
}

configs() {  # NAME ARGUMENTS for each of the four configs, and paper256 in rounds of 4
  echo "32_float32 --dtype float32"
  echo "32_bfloat16 --dtype bfloat16"
  echo "256_float32 ${paper256[*]} --dtype float32"
  echo "256_bfloat16 ${paper256[*]} --dtype bfloat16"
  echo "256_float32_rounds4 ${paper256[*]} --dtype float32 --device-batch 4"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/summary.txt"
python3 -c "import jax, flax, optax; print('jax', jax.__version__, 'flax', flax.__version__, jax.devices())" \
  | tee -a "$out/summary.txt"

# 1. all compiles at once, sharing the GPU's memory
while read -r name arguments; do
  XLA_PYTHON_CLIENT_PREALLOCATE=false bench "compile$name" 300 \
    python3 benchmarks/bench_train.py $arguments --compile-only &
done < <(configs)
wait

# 2. timed runs, one at a time, of the programs that compiled
while read -r name arguments; do
  if [ -f "$out/compile$name.json" ]; then
    bench "train$name" 90 python3 benchmarks/bench_train.py $arguments --windows 3
  fi
done < <(configs)
configs | grep -v rounds | while read -r name arguments; do
  bench "sample$name" 60 python3 benchmarks/bench_sample.py $arguments --batch 32
done

python3 - "$out" <<'EOF' | tee -a "$out/summary.txt"
import json, pathlib, sys
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
    r = json.loads(path.read_text())
    keys = ("compile_s_total", "img_per_s", "sec_per_kimg", "ratio_to_peak", "peak_memory_bytes",
            "recompiles_after_warmup")
    print(path.stem, {k: round(r[k], 3) if isinstance(r[k], float) else r[k] for k in keys if k in r})
EOF
