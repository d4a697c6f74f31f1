# Sourced by the scripts that train or measure: picks OpenBLAS's kernels.
# Debian's OpenBLAS 0.3.21 does not recognise recent AMD EPYC cores and falls
# back to AVX2 (Haswell) kernels, and these machines' environment pins
# OPENBLAS_CORETYPE=Haswell as well. On a CPU with the AVX-512 subsets the
# SkylakeX kernels use (F, BW, DQ, VL, CD) they run our GEMMs 1.8-1.9x faster
# (docs/performance.md). Set MONE_BLAS_CORETYPE to choose another.
mone_cpu_has_skylakex_subsets() {
  local flags f
  flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null) "
  for f in avx512f avx512bw avx512dq avx512vl avx512cd; do
    case "$flags" in *" $f "*) ;; *) return 1 ;; esac
  done
}
if [ -n "${MONE_BLAS_CORETYPE:-}" ]; then
  export OPENBLAS_CORETYPE="$MONE_BLAS_CORETYPE"
elif mone_cpu_has_skylakex_subsets; then
  export OPENBLAS_CORETYPE=SKYLAKEX
fi
