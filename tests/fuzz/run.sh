#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (CLANG/CLANGXX, default clang-19) in build-fuzz and
# runs each for FUZZ_SECONDS (default 60) from its seed corpus in tests/fuzz/corpus/<target>.
# A crash fails the run; the input that crashed is left in build-fuzz/crashes/<target>/ and
# belongs, once fixed, in tests/fuzz/regressions/<target>/ (replayed by every ctest run).
set -euo pipefail
cd "$(dirname "$0")/../.."
cc=${CLANG:-clang-19}
cxx=${CLANGXX:-clang++-19}
secs=${FUZZ_SECONDS:-60}
cmake -S . -B build-fuzz -DCORRAL_FUZZ=ON -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j"$(nproc)" >/dev/null
status=0
for target in policy plan audit_verify proxy_target redact agent_output tdx_quote; do
  work=$(mktemp -d /tmp/corral-fuzz-XXXXXX)
  mkdir -p "build-fuzz/crashes/$target"
  # New inputs go to the scratch corpus; the seeds stay as they are.
  if build-fuzz/tests/fuzz/"${target}_fuzz" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="build-fuzz/crashes/$target/" -print_final_stats=1 \
      "$work" "tests/fuzz/corpus/$target" >"$work.log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work.log" | grep -o '[0-9]*$')
    echo "fuzz $target: ${runs:-?} inputs in ${secs} s, no crash"
  else
    echo "fuzz $target: CRASH; the input is in build-fuzz/crashes/$target/"
    tail -40 "$work.log"
    status=1
  fi
  rm -rf "$work" "$work.log"
done
exit $status
