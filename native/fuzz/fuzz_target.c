/*
 * libFuzzer target for the native JPEG path: compiles the addon's own C file (N-API part left out) and feeds it
 * fuzzed inputs in the format of fuzz_input.h. Built and run by scripts/fuzz-native.sh under AddressSanitizer and
 * UndefinedBehaviorSanitizer.
 * With -DFUZZ_SELF_TEST the output buffer is one byte shorter than the core is told: ASan must then report a
 * heap-buffer-overflow on the first input that decodes (test/native-fuzz.test.ts checks that the harness would see one).
 */
#include "../jpeg_preprocess.c"

#include <stdint.h>

#ifdef FUZZ_SELF_TEST
#define FUZZ_SHORTFALL 1
#endif
#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  run_fuzz_input(data, size);
  return 0;
}
