#!/usr/bin/env bash
# The GPU measurements of the performance issue, prepared for a lent GPU machine, where device
# time is short and one slow compile must not use up the rest:
#
#   bash benchmarks/gpu_suite.sh compile   # train-step compile at 32, XLA's conv autotuner off / on
#   bash benchmarks/gpu_suite.sh train     # bench_train at 32 and 256 (paper256), float32 / bfloat16
#   bash benchmarks/gpu_suite.sh sample    # bench_sample, the same four
#
# Each benchmark runs under its own time limit and writes NAME.json and NAME.log under $OUT
# (default gpu_results/); summary.txt says which finished. 'train' and 'sample' keep the
# autotuner off when 'compile' found it slower to compile with it (or it did not finish).
# A GPU image without ml-collections installs the wheels in .gpu/whl/ (download them here:
# pip download --no-deps --only-binary=:all: -d .gpu/whl ml-collections==1.1.0).
set -u
out=${OUT:-gpu_results}
mkdir -p "$out"
if ! python -c "import ml_collections" 2> /dev/null; then pip install -q --no-deps .gpu/whl/*.whl; fi
paper256=(--resolution 256 --channel-base 16384 --channel-max 512 --mapping 8 --batch 8)

bench() {  # NAME LIMIT_S COMMAND...
  local name=$1 limit=$2 start=$SECONDS status
  shift 2
  timeout "$limit" "$@" --json "$out/$name.json" > "$out/$name.log" 2>&1
  status=$?
  echo "$name: exit $status after $((SECONDS - start)) s (limit $limit s)" | tee -a "$out/summary.txt"
}

autotune_flags() {  # XLA_FLAGS for the timed runs, from what 'compile' measured
  python - "$out" <<'EOF'
import json, pathlib, sys
def compile_s(name):
    path = pathlib.Path(sys.argv[1]) / f"{name}.json"
    return json.loads(path.read_text())["compile_s_total"] if path.exists() else float("inf")
off, on = compile_s("compile32_autotune_off"), compile_s("compile32_autotune_on")
print("--xla_gpu_autotune_level=0" if off < on else "")
EOF
}

case "${1:-}" in
  compile)
    bench compile32_autotune_off 150 env XLA_FLAGS=--xla_gpu_autotune_level=0 \
      python benchmarks/bench_train.py --compile-only
    bench compile32_autotune_on 150 python benchmarks/bench_train.py --compile-only ;;
  train)
    flags=$(autotune_flags)
    for dtype in float32 bfloat16; do
      bench "train32_$dtype" 120 env XLA_FLAGS="$flags" \
        python benchmarks/bench_train.py --dtype "$dtype" --windows 3
      bench "train256_$dtype" 150 env XLA_FLAGS="$flags" \
        python benchmarks/bench_train.py "${paper256[@]}" --dtype "$dtype" --windows 2
    done ;;
  sample)
    flags=$(autotune_flags)
    for dtype in float32 bfloat16; do
      bench "sample32_$dtype" 60 env XLA_FLAGS="$flags" python benchmarks/bench_sample.py --dtype "$dtype"
      bench "sample256_$dtype" 90 env XLA_FLAGS="$flags" \
        python benchmarks/bench_sample.py "${paper256[@]}" --batch 32 --dtype "$dtype"
    done ;;
  *)
    echo "usage: bash benchmarks/gpu_suite.sh compile|train|sample (results under \$OUT)" >&2
    exit 2 ;;
esac
