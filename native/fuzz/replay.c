/*
 * Runs the addon's C core (../jpeg_preprocess.c without N-API) outside Node: on each file given, `--iterations N`
 * times, with the classifier's plan (short side 256, centre crop 224) — for instruction counts
 * under `valgrind --tool=callgrind` — or, with `--fuzz-input`, on files in the fuzz target's format (plan bytes, then
 * JPEG), to replay what the fuzzer saved without libFuzzer. Prints a checksum of the output and the first error.
 * Build: cc -O3 -DJPEG_PREPROCESS_NO_NAPI native/fuzz/replay.c -o replay -lturbojpeg -lm
 */
#include "../jpeg_preprocess.c"

#include "fuzz_input.h"

static unsigned char *read_file(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *data = malloc(n > 0 ? (size_t)n : 1);
  *size = data ? fread(data, 1, (size_t)(n > 0 ? n : 0), f) : 0;
  fclose(f);
  return data;
}

int main(int argc, char **argv) {
  int iterations = 1, fuzz_input = 0, failures = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--iterations") && i + 1 < argc) {
      iterations = atoi(argv[++i]);
      continue;
    }
    if (!strcmp(argv[i], "--fuzz-input")) {
      fuzz_input = 1;
      continue;
    }
    size_t size;
    unsigned char *data = read_file(argv[i], &size);
    if (!data) {
      fprintf(stderr, "%s: cannot read\n", argv[i]);
      return 2;
    }
    if (fuzz_input) {
      int status = run_fuzz_input(data, size);
      printf("%s: %s\n", argv[i], status == 0 ? "decoded" : "rejected");
      free(data);
      continue;
    }
    int width = 0, height = 0, subsampling, colorspace;
    tjhandle tj = tjInitDecompress();
    if (tjDecompressHeader3(tj, data, (unsigned long)size, &width, &height, &subsampling, &colorspace) != 0) {
      fprintf(stderr, "%s: %s\n", argv[i], tjGetErrorStr2(tj));
      return 2;
    }
    tjDestroy(tj);
    double plan[JP_PLAN_LENGTH];
    classifier_plan(width, height, 256, 224, plan);
    unsigned char *out = malloc(3 * 224 * 224);
    char error[200];
    for (int k = 0; k < iterations; k++) {
      if (jp_preprocess(data, size, out, 3 * 224 * 224, plan, JP_DEFAULT_MAX_PIXELS, error, sizeof(error)) != 0) {
        fprintf(stderr, "%s: %s\n", argv[i], error);
        failures++;
        break;
      }
    }
    unsigned long long sum = 0;
    for (int k = 0; k < 3 * 224 * 224; k++) sum += out[k];
    printf("%s: plan %.0fx%.0f crop %.0f at %.0f,%.0f, checksum %llu\n", argv[i], plan[0], plan[1], plan[4], plan[2], plan[3], sum);
    free(out);
    free(data);
  }
  return failures ? 1 : 0;
}
