#!/usr/bin/env bash
# corral's one entry point for people and CI.
#   ./build.sh demo   install what is missing, build, and run the built-in demo
#   ./build.sh test   install what is missing, build, and run every test (as root: also as an
#                     unprivileged user, as CI does), clang-tidy, the suite again under ASan and
#                     UBSan, and each fuzz target for FUZZ_SECONDS (60)
#   ./build.sh bench  build and run the benchmarks in tests/bench
# Works on Debian 12 as root or with sudo. Nothing is downloaded but Debian packages and, for
# the tests, the pinned npm packages of tests/agents (real agent CLIs).
set -euo pipefail
cd "$(dirname "$0")"
src=$(pwd)
mode=${1:-demo}

packages=(build-essential cmake pkg-config git libgit2-dev libyaml-cpp-dev libkrb5-dev libseccomp-dev libboost-dev libboost-filesystem-dev
  nlohmann-json3-dev libtomlplusplus-dev libcli11-dev libssl-dev libgtest-dev libgmock-dev
  qemu-system-x86)
[ "$mode" = bench ] && packages+=(bubblewrap hyperfine python3)
# The tests' peers: curl, openssl and Python's http.server on loopback; Node.js for the agent CLIs
# and the schema validators; Chromium for the HTML report.
if [ "$mode" = test ]; then
  packages+=(curl openssl python3 nodejs chromium clang-19 libclang-rt-19-dev clang-tidy-19)
  command -v npm >/dev/null 2>&1 || packages+=(npm)
fi

stage() { printf '\n== %s (%ss)\n' "$1" "$SECONDS"; }

install_missing() {
  local missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return
  stage "installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# The vm target's guest kernel: Debian's linux-image package, extracted (not installed: the host
# keeps its kernel and /boot) into DIR/vm, with only the modules launcher/vm.h names.
guest_kernel() {  # guest_kernel DIR
  local dir=$1/vm tmp pkg
  [ -f "$dir/vmlinuz" ] && return
  if [ -f build/vm/vmlinuz ]; then mkdir -p "$1" && cp -a build/vm "$1/" && return; fi
  stage "guest kernel for the vm target in $dir"
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')
  if [ -z "$pkg" ]; then
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo apt-get update -qq
    pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
  fi
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -qq "$pkg" 2>/dev/null)
  dpkg-deb -x "$tmp"/*.deb "$tmp/x"
  mkdir -p "$dir.tmp/modules"
  cp "$tmp"/x/boot/vmlinuz-* "$dir.tmp/vmlinuz"
  for m in $(grep -o '"[a-z0-9_]*\.ko"' launcher/vm.h | tr -d '"'); do
    find "$tmp/x/lib/modules" -name "$m" -exec cp {} "$dir.tmp/modules/" \;
    [ -f "$dir.tmp/modules/$m" ] || { echo "$pkg has no $m" >&2; exit 1; }
  done
  rm -rf "$tmp" "$dir"
  mv "$dir.tmp" "$dir"
}

build() {  # build DIR [cmake args...]
  local dir=$1
  shift
  guest_kernel "$dir"
  stage "building in $dir"
  cmake -S "$src" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCORRAL_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j"$(nproc)"
}

# As root, the suite runs a second time as this unprivileged user, from a copy it can read.
test_user=corral-test

run_tests() {
  stage "agent CLIs from npm (tests/agents)"
  npm ci --ignore-scripts --no-audit --no-fund --prefix tests/agents >/dev/null
  # The one install script the tests need, run by name: it copies Claude Code's native binary
  # from its platform package over the placeholder (no network).
  (cd tests/agents && node node_modules/@anthropic-ai/claude-code/install.cjs)
  stage "schema validators and playwright-core from npm (tests/k8s, tests/html)"
  npm ci --ignore-scripts --no-audit --no-fund --prefix tests/k8s >/dev/null
  npm ci --ignore-scripts --no-audit --no-fund --prefix tests/html >/dev/null
  build build -DBUILD_TESTING=ON
  stage "tests as $(id -un)"
  (cd build && ctest --output-on-failure --no-tests=error -j"$(nproc)")
  if [ "$(id -u)" -eq 0 ]; then
    id "$test_user" >/dev/null 2>&1 || useradd --system --create-home "$test_user"
    copy=$(mktemp -d /tmp/corral-unprivileged-XXXXXX)
    trap 'rm -rf "$copy"' EXIT  # global: the trap runs after this function returned
    git ls-files -z | xargs -0 cp --parents -t "$copy"
    chown -R "$test_user" "$copy"
    cp -a tests/agents/node_modules "$copy/tests/agents/"  # root's, read-only to the user
    cp -a tests/k8s/node_modules "$copy/tests/k8s/"
    cp -a tests/html/node_modules "$copy/tests/html/"
    mkdir -p "$copy/build" && cp -a build/vm "$copy/build/" && chown -R "$test_user" "$copy/build"
    chmod 755 "$copy"
    stage "tests as $test_user (unprivileged)"
    runuser -u "$test_user" -- env CORRAL_REQUIRE_FEATURES="${CORRAL_REQUIRE_FEATURES:-}" bash -c "
      set -e
      cmake -S '$copy' -B '$copy/build' -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCORRAL_WERROR=ON \
        -DBUILD_TESTING=ON >/dev/null
      cmake --build '$copy/build' -j$(nproc) >/dev/null
      cd '$copy/build' && ctest --output-on-failure --no-tests=error -j$(nproc)"
  fi
  stage "clang-tidy (.clang-tidy) on policy/ sandbox/ worktree/ launcher/"
  run-clang-tidy-19 -p build -quiet -extra-arg=-Wno-deprecated-declarations \
    -extra-arg=-DBOOST_ASIO_HAS_CO_AWAIT=1 -extra-arg=-DBOOST_ASIO_HAS_STD_COROUTINE=1 -j"$(nproc)" \
    "$src/(policy|sandbox|worktree|launcher)/" >build/clang-tidy.log 2>&1 ||
    { grep -E 'warning:|error:' build/clang-tidy.log | sort -u; exit 1; }
  build build-asan -DBUILD_TESTING=ON -DCORRAL_SANITIZE=ON
  stage "tests with AddressSanitizer and UndefinedBehaviorSanitizer"
  (cd build-asan && UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    ctest --output-on-failure --no-tests=error -j"$(nproc)")
  stage "fuzzing each parser for ${FUZZ_SECONDS:-60} s"
  tests/fuzz/run.sh
  stage "done"
}

install_missing
case "$mode" in
  demo)
    build build -DBUILD_TESTING=OFF
    stage "corral demo"
    build/launcher/corral demo
    ;;
  test)
    run_tests
    ;;
  bench)
    build build -DBUILD_TESTING=OFF
    tests/bench/exec_vs_bwrap.sh build/launcher/corral
    ;;
  *)
    echo "usage: $0 demo|test|bench" >&2
    exit 2
    ;;
esac
