/*
 * The fuzz target's input format and checks, shared by fuzz_target.c (libFuzzer) and replay.c (plain replay).
 * Input: 9 bytes that choose a resize plan, then the JPEG. Byte 0's low 2 bits pick the kind of plan:
 *   0, 1  the classifier's own shape, from the JPEG's header: short side 1 + byte1 % 128, centre crop 1 + byte2 % side
 *   2     any integers: resized 1…2048 × 1…2048, crop 1…64, offsets that may run one past the edge
 * (Crops stay small: the code paths do not depend on the crop's size, and every output value costs fuzzing time.)
 *   3     hostile numbers in every field (NaN, ±∞, −0, fractions, 1e300, 2³¹ …)
 * bit 2 hands the core an output buffer one byte too short for the crop. A success whose crop does not fit the output,
 * or a failure without a message, aborts, which libFuzzer reports like a sanitizer finding; a write past the output
 * is ASan's to report. (Every byte is a valid output value: the values are not checked.)
 * Include after ../jpeg_preprocess.c.
 */
#define FUZZ_PLAN_BYTES 9
#ifndef FUZZ_SHORTFALL
#define FUZZ_SHORTFALL 0
#endif
/* Full-size pixel cap for fuzzing: keeps one input's decode in milliseconds; the addon uses JP_DEFAULT_MAX_PIXELS. */
#define FUZZ_MAX_PIXELS (2.0 * 1024 * 1024)

#ifdef __clang__
#define FUZZ_NO_COVERAGE __attribute__((no_sanitize("coverage")))
#else
#define FUZZ_NO_COVERAGE
#endif

/* resizePlan() of src/apps/image-preprocess.ts, generalised to any short side and crop. */
static void classifier_plan(int width, int height, int short_side, int crop, double plan[JP_PLAN_LENGTH]) {
  int s = width < height ? width : height, l = width < height ? height : width;
  long long resized_long = (long long)short_side * l / s;
  if (resized_long < short_side) resized_long = short_side;
  double w = width <= height ? short_side : (double)resized_long, h = width <= height ? (double)resized_long : short_side;
  plan[0] = w;
  plan[1] = h;
  plan[2] = nearbyint((w - crop) / 2); /* round half to even, like roundHalfEven */
  plan[3] = nearbyint((h - crop) / 2);
  plan[4] = crop;
}

static const double hostile[16] = {0,   -1,  0.5,  1,        224, 65536, 65537, 1e300,
                                   -0.0, NAN, INFINITY, -INFINITY, 1e-300, 4096, 4097, 2147483648.0};

static int run_fuzz_input(const unsigned char *data, size_t size) {
  if (size < FUZZ_PLAN_BYTES) return -1;
  const unsigned char *b = data;
  const unsigned char *jpeg = data + FUZZ_PLAN_BYTES;
  size_t jpeg_size = size - FUZZ_PLAN_BYTES;
  double plan[JP_PLAN_LENGTH];
  int kind = b[0] & 3;
  if (kind <= 1) {
    int width = 64, height = 64, subsampling, colorspace;
    tjhandle tj = tjInitDecompress();
    if (tj && tjDecompressHeader3(tj, jpeg, (unsigned long)jpeg_size, &width, &height, &subsampling, &colorspace) != 0) {
      width = 64;
      height = 64;
    }
    if (tj) tjDestroy(tj);
    if (width < 1 || height < 1) width = height = 64;
    int side = 1 + b[1] % 128;
    classifier_plan(width, height, side, 1 + b[2] % side, plan);
  } else if (kind == 2) {
    plan[0] = 1 + (b[1] | b[2] << 8) % 2048;
    plan[1] = 1 + (b[3] | b[4] << 8) % 2048;
    plan[4] = 1 + b[5] % 64;
    plan[2] = plan[0] >= plan[4] ? b[6] % (int)(plan[0] - plan[4] + 2) : 0;
    plan[3] = plan[1] >= plan[4] ? b[7] % (int)(plan[1] - plan[4] + 2) : 0;
  } else {
    /* Each nibble of bytes 1…3 picks a hostile value for fields 0…4 ... */
    for (int i = 0; i < JP_PLAN_LENGTH; i++) {
      int nibble = (b[1 + i / 2] >> (4 * (i % 2))) & 15;
      plan[i] = hostile[nibble];
    }
    /* ... except where byte 7 keeps the field sane, so the later checks get reached too. */
    static const double sane[JP_PLAN_LENGTH] = {40, 30, 4, 2, 24};
    for (int i = 0; i < JP_PLAN_LENGTH; i++)
      if (b[7] >> i & 1) plan[i] = sane[i];
  }
  size_t values = 0;
  if (plan[4] >= 1 && plan[4] <= 256 && plan[4] == floor(plan[4])) values = (size_t)plan[4] * (size_t)plan[4] * 3;
  else values = 3 * 24 * 24;
  if (b[0] & 4 && values > 1) values -= 1;
  /* FUZZ_SHORTFALL (fuzz_target.c's self-test) allocates less than the core is told: ASan must catch its writes. */
  size_t allocated = values - FUZZ_SHORTFALL;
  unsigned char *out = malloc(allocated);
  if (!out) abort();
  char error[200];
  int status = jp_preprocess(jpeg, jpeg_size, out, values, plan, FUZZ_MAX_PIXELS, error, sizeof(error));
  if (status == 0) {
    size_t written = (size_t)plan[4] * (size_t)plan[4] * 3;
    if (written > values) abort(); /* succeeded although the output cannot hold the crop */
  } else if (status != -1 || !error[0]) {
    fprintf(stderr, "failure without a message (status %d)\n", status);
    abort();
  }
  free(out);
  return status;
}
