#!/usr/bin/env bash
# Everything a first look at a GPU needs, in one command on the GPU machine: build the
# model layer (CUDA, cuBLASLt, cuDNN and NCCL from the Python environment's
# pip packages; no MPI, HDF5 or Boost needed), run the `cuda` tests, then the
# step benchmarks of ours and PyTorch's on the same GPU, and print the table.
#
#   bench/gpu.sh [--quick] [--only STAGES]
#
# Logs and results go to $OUT (when set) or ./gpu-out:
# machine.txt, build.log, ctest.log, sanitizer.log, bench.log, results.jsonl,
# summary.md.
# GoogleTest is built from source: $MONE_GTEST_SOURCE, else .carry/googletest
# (a copy of /usr/src/googletest inside the checkout, ignored by git, for a
# machine that has none installed), else /usr/src/googletest.
# --quick: tiny and s16 only, fewer steps (a first look).
# --only build,tests,sanitizer,bench (a comma list; default all): run the
# stages one at a time, e.g. where a command's time is limited (build-gpu/
# stays between runs).
# Each stage runs even when an earlier one failed (a failing test must not
# hide the benchmark), and the script exits non-zero if any stage failed.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$root/gpu-out}
build=$root/build-gpu
quick=0
only=build,tests,sanitizer,bench
while (($#)); do
  case $1 in
    --quick) quick=1 ;;
    --only) only=$2; shift ;;
    *) echo "usage: bench/gpu.sh [--quick] [--only build,tests,sanitizer,bench]"; exit 2 ;;
  esac
  shift
done
wanted() { [[ ,$only, == *,$1,* ]]; }
mkdir -p "$out"
status=0
stage() { echo "== $*"; }
failed() { echo "!! $1 failed"; status=1; }

python=python3
gtest=${MONE_GTEST_SOURCE:-}
for candidate in "$root/.carry/googletest" /usr/src/googletest; do
  [[ -z $gtest && -f $candidate/CMakeLists.txt ]] && gtest=$candidate
done
[[ -n $gtest ]] || { echo "no GoogleTest source: set MONE_GTEST_SOURCE or copy one to .carry/googletest"; exit 2; }
# pip's nvidia packages: their prefixes hold include/ and lib/ (versioned .so only).
# __path__, not __file__: these may be namespace packages without an __init__.py.
prefix_of() { $python -c "import $1; print(list($1.__path__)[0])" 2>/dev/null; }
nccl_root=$(prefix_of nvidia.nccl)
cudnn_root=$(prefix_of nvidia.cudnn)
export LD_LIBRARY_PATH=${nccl_root:+$nccl_root/lib:}${cudnn_root:+$cudnn_root/lib:}${LD_LIBRARY_PATH:-}

stage "machine"
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  nvcc --version | tail -2
  $python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version())"
  echo "nccl: ${nccl_root:-not found}; cudnn: ${cudnn_root:-not found}; googletest: $gtest"
  git -C "$root" log -1 --format='commit %H %s' 2>/dev/null
} 2>&1 | tee "$out/machine.txt"

if wanted build; then
stage "build"
{
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMONE_MODEL_ONLY=ON -DMONE_OPENBLAS=OFF \
    -DMONE_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DMONE_GTEST_SOURCE="$gtest" \
    ${nccl_root:+-DNCCL_ROOT="$nccl_root"} ${cudnn_root:+-DCUDNN_ROOT="$cudnn_root"} &&
    cmake --build "$build" -j "$(nproc)"
} > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; failed build; exit 1; }
grep "mone:" "$out/build.log"
fi

if wanted tests; then
stage "cuda tests"
(cd "$build" && ctest -L cuda --output-on-failure -j 1) > "$out/ctest.log" 2>&1 || failed "cuda tests"
grep -E "tests passed|tests failed|Failed|\*\*\*|attention " "$out/ctest.log" | head -40
fi

if wanted sanitizer; then
stage "compute-sanitizer (tiny, one step of each kind)"
if command -v compute-sanitizer >/dev/null; then
  for tool in memcheck racecheck synccheck; do
    for attention in cudnn fused; do
      compute-sanitizer --tool $tool --error-exitcode 3 "$build/bench/mone-bench-gpu-step" --preset tiny \
        --batch 16 --capacities 1,0.5 --attention $attention --warmup 1 --steps 1 >> "$out/sanitizer.log" 2>&1 ||
        failed "compute-sanitizer --tool $tool (attention $attention)"
    done
  done
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$out/sanitizer.log"
else
  echo "compute-sanitizer not found"
fi
fi

if wanted bench; then
stage "benchmarks"
results=$out/results.jsonl
: > "$results"
steps=20
presets="tiny s16 b16"
((quick)) && { steps=10; presets="tiny s16"; }
bench() { "$@" >> "$results" 2>> "$out/bench.log" || failed "$*"; }
for preset in $presets; do
  batch=256
  [[ $preset == tiny ]] && batch=512
  caps=1,0.75,0.5,0.3
  for attention in cudnn fused; do
    bench "$build/bench/mone-bench-gpu-step" --preset "$preset" --batch $batch --capacities $caps \
      --attention $attention --graph --steps $steps --json
  done
  "$build/bench/mone-bench-gpu-step" --preset "$preset" --batch $batch --capacities 1 --steps 3 \
    >> "$out/bench.log" 2>&1  # the table with the memory line and the attention report
  bench $python "$root/bench/torch_gpu_step.py" --preset "$preset" --batch $batch --capacities 1 0.75 0.5 0.3 \
    --steps $steps
  bench $python "$root/bench/torch_gpu_step.py" --preset "$preset" --batch $batch --capacities 1 0.5 \
    --steps $steps --compile
done

stage "summary"
$python "$root/bench/gpu_summary.py" "$results" "$out/machine.txt" | tee "$out/summary.md" || failed summary
fi
exit $status
