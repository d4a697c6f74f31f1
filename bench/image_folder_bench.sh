#!/usr/bin/env bash
# The image folder benchmarks (docs/performance.md, "Image folders"):
# generates COUNT 500x375 JPEGs (bench/make_jpeg_folder.py), times
# `mone data --from imagefolder` into encoded and raw (224) shards with 1 and
# 2 threads, then mone-bench-loader on both. Run it alone on the machine:
#   flock /tmp/mone-bench.lock bench/image_folder_bench.sh [COUNT]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
count=${1:-400}
work=$(mktemp -d /tmp/mone-image-folder-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
python=${MONE_PYTHON:-/usr/bin/python3}
"$python" "$root/bench/make_jpeg_folder.py" "$work/folder" "$count"
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(lscpu | sed -n 's/^Model name: *//p'), nproc=$(nproc), load average $(cut -d' ' -f1-3 /proc/loadavg), $count JPEGs, $(du -sh "$work/folder" | cut -f1)"
echo "| store | threads | seconds | images/s | images/s per thread |"
echo "|---|---|---|---|---|"
for store in encoded raw; do
  for threads in 1 2; do
    out="$work/$store-$threads"
    start=$(date +%s.%N)
    "$root/build/data/mone-data" --from imagefolder --train "$work/folder" --store "$store" --resize 224 \
      --threads "$threads" --progress none --out "$out" > /dev/null
    seconds=$(echo "$(date +%s.%N) - $start" | bc -l)
    printf "| %s | %d | %.2f | %.0f | %.0f |\n" "$store" "$threads" "$seconds" \
      "$(echo "$count / $seconds" | bc -l)" "$(echo "$count / $seconds / $threads" | bc -l)"
  done
done
"$root/build/bench/mone-bench-loader" "$work/encoded-1" "$work/raw-1"
