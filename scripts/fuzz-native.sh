#!/usr/bin/env bash
# Fuzzes the native JPEG path (native/jpeg_preprocess.c, the same C core the addon calls) under AddressSanitizer and
# UndefinedBehaviorSanitizer with libFuzzer: builds the seed corpus from the sample photos (native/fuzz/make_corpus.c,
# nothing downloaded), builds native/fuzz/fuzz_target.c with clang, runs N inputs, and fails on any finding (the
# input that caused it is saved under native/fuzz/build/artifacts/; replay it with native/fuzz/replay.c).
#
#   bash scripts/fuzz-native.sh [--runs N] [--seed S] [--install] [--check] [--self-test]
#     --runs N     inputs to run (default 200000; CI runs 20000 through test/native-fuzz.test.ts)
#     --seed S     libFuzzer's random seed (default 1: a rerun with the same seed repeats the same inputs)
#     --install    install clang, its sanitizer runtimes, libFuzzer and libjpeg-turbo's headers from Debian first
#     --check      only say whether the toolchain is here (exit 0) or not (exit 2)
#     --self-test  build the target with an output buffer one byte short and check ASan reports it (exit 0 if so)
# Environment: BATCHWISE_IMAGES_DIR (default ../shared/images) for the sample photos; BATCHWISE_FUZZ_DIR (default
# native/fuzz/build) for the builds, corpus, log and crashing inputs; CLANG (default clang).
set -euo pipefail
cd "$(dirname "$0")/.."

runs=200000
seed=1
mode=fuzz
install=0
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --install) install=1; shift ;;
    --check) mode=check; shift ;;
    --self-test) mode=self-test; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

# Debian names: clang 14 alone lacks the sanitizer runtimes (libclang-rt-14-dev, a "recommends" that
# --no-install-recommends skips) and libFuzzer's driver (libfuzzer-14-dev).
packages=(clang libclang-rt-14-dev libfuzzer-14-dev libturbojpeg0-dev libjpeg62-turbo-dev)
if [ "$install" = 1 ]; then bash scripts/apt-install.sh "${packages[@]}"; fi

CLANG="${CLANG:-clang}"
build="${BATCHWISE_FUZZ_DIR:-native/fuzz/build}"
mkdir -p "$build"
sanitizers="-fsanitize=fuzzer,address,undefined,float-divide-by-zero,unsigned-integer-overflow -fno-sanitize-recover=all"
flags=(-g -O1 -std=c11 -DJPEG_PREPROCESS_NO_NAPI $sanitizers)

# The toolchain works if it links a trivial fuzz target against libjpeg-turbo.
probe="$build/probe"
if ! command -v "$CLANG" >/dev/null 2>&1 ||
  ! printf '#include <stddef.h>\n#include <stdint.h>\n#include <turbojpeg.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' |
    "$CLANG" -x c - "${flags[@]}" -o "$probe" -lturbojpeg >/dev/null 2>&1; then
  echo "native fuzzing needs clang with libFuzzer and the ASan/UBSan runtimes, and libturbojpeg0-dev:" >&2
  echo "  bash scripts/apt-install.sh ${packages[*]}   (or: npm run fuzz:native -- --install)" >&2
  exit 2
fi
rm -f "$probe"
[ "$mode" = check ] && { echo "native fuzzing toolchain: ok ($("$CLANG" --version | head -1))"; exit 0; }

# Seeds, fresh each run: the generator is deterministic, so the same photos give the same corpus.
images="${BATCHWISE_IMAGES_DIR:-../shared/images}"
photos=()
for photo in "$images"/*.jpg "$images"/*.jpeg "$images"/*.JPG; do [ -f "$photo" ] && photos+=("$photo"); done
rm -rf "$build/corpus" "$build/work"
mkdir -p "$build/corpus" "$build/work" "$build/artifacts"
"$CLANG" -O2 native/fuzz/make_corpus.c -o "$build/make_corpus" -ljpeg -lturbojpeg
"$build/make_corpus" "$build/corpus" "${photos[@]}"

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
options=(-seed="$seed" -dict=native/fuzz/jpeg.dict -max_len=65536 -timeout=30 -rss_limit_mb=2048
  -malloc_limit_mb=1024 -print_final_stats=1 -artifact_prefix="$build/artifacts/")

if [ "$mode" = self-test ]; then
  "$CLANG" "${flags[@]}" -DFUZZ_SELF_TEST native/fuzz/fuzz_target.c -o "$build/fuzz_self_test" -lturbojpeg -lm
  log="$build/self-test.log"
  set +e
  "$build/fuzz_self_test" -runs=2000 "${options[@]}" -artifact_prefix="$build/self-test-" "$build/work" "$build/corpus" >"$log" 2>&1
  status=$?
  set -e
  rm -f "$build"/self-test-crash-*
  if [ $status -ne 0 ] && grep -q "ERROR: AddressSanitizer: heap-buffer-overflow" "$log" && grep -q "jp_preprocess" "$log"; then
    echo "self-test: ASan reported the planted heap-buffer-overflow in jp_preprocess (exit $status), as it must"
    exit 0
  fi
  echo "self-test FAILED: the planted overflow went unreported (exit $status); see $log" >&2
  exit 1
fi

"$CLANG" "${flags[@]}" native/fuzz/fuzz_target.c -o "$build/fuzz_target" -lturbojpeg -lm
log="$build/fuzz.log"
echo "fuzzing native/jpeg_preprocess.c: $runs inputs, seed $seed, ${#photos[@]} photos → $(ls "$build/corpus" | wc -l) seeds (full log: $log)"
start=$(date +%s)
set +e
"$build/fuzz_target" -runs="$runs" "${options[@]}" "$build/work" "$build/corpus" >"$log" 2>&1
status=$?
set -e
seconds=$(($(date +%s) - start))
grep -E "^(Done|stat::|INFO: seed|#[0-9]+[[:space:]]+(INITED|DONE))" "$log" || true
reports=$(grep -cE "ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|^==[0-9]+==ABORTING|deadly signal" "$log" || true)
if [ $status -ne 0 ] || [ "$reports" != 0 ]; then
  grep -E -A30 "ERROR:|runtime error:|deadly signal" "$log" | head -80 >&2
  echo "native fuzz FAILED (exit $status, $reports report lines); inputs: $(ls "$build/artifacts" 2>/dev/null | tr '\n' ' ')" >&2
  exit 1
fi
echo "native fuzz: $runs inputs in ${seconds} s, 0 sanitizer reports"
