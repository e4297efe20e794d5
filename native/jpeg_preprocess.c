/*
 * JPEG → the centre crop as three planes of 8-bit RGB (CHW) for image classifiers, off the main thread (libuv pool),
 * in one call: libjpeg-turbo decodes at the smallest DCT scale (1/8 steps, not below 1/2) that still covers the resize
 * target, so a 768×576 photo decodes at 384×288 for about the cost of its entropy decoding; a triangle (antialiased
 * bilinear) filter then resamples to the resize plan's size, computing only the centre-crop window, and rounds to
 * 8 bits as PIL and libvips do. Normalisation ((v/255 − mean)/std) is the model's side: a quarter of the bytes travel
 * from here to the model as floats would.
 *
 * JS API: preprocess(jpeg: Uint8Array, out: Uint8Array, plan: Float64Array) → Promise<void>
 *   plan = [resizedWidth, resizedHeight, cropLeft, cropTop, cropSize]
 * Rejects with libjpeg-turbo's message for anything it cannot decode (the caller falls back to sharp, which
 * classifies the error for the client), and with a message for a plan that does not fit; throws a TypeError only
 * for arguments of the wrong type.
 *
 * Layout: jp_preprocess() below is plain C (no N-API) so the libFuzzer target in native/fuzz/ compiles this same
 * file with JPEG_PREPROCESS_NO_NAPI defined and calls exactly what the addon calls.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#define JP_PLAN_LENGTH 5
/* Full-size pixels the addon accepts (sharp's default limitInputPixels, 0x3FFF²); the JS side applies its own,
 * lower limit before calling. Guards allocations (a progressive file's coefficients are kept whole) for any caller. */
#define JP_DEFAULT_MAX_PIXELS 268402689.0
/* Largest crop side: bounds the tap tables and the intermediate rows whatever the plan says. */
#define JP_MAX_CROP 4096
/* Largest resize target side: the plan never enlarges more than this. */
#define JP_MAX_RESIZED 65536

/* Triangle-filter taps for `count` outputs starting at output index `first`, resampling in_size → out_size (PIL's
 * antialiased bilinear: the support widens with the reduction factor). Every output gets the same number of taps,
 * `n` (zero weights pad the short ones, and the window shifts inward at the edges), so the inner loops have a fixed
 * trip count the compiler unrolls. */
typedef struct {
  int *start;
  float *weights; /* count × n */
  int n;
} Taps;

static int make_taps(Taps *t, int in_size, int out_size, int first, int count) {
  double scale = (double)in_size / out_size;
  double width = scale > 1.0 ? scale : 1.0;
  int bound = (int)ceil(width) * 2 + 1;
  if (bound > in_size) bound = in_size;
  t->start = malloc(sizeof(int) * (size_t)count);
  t->weights = calloc((size_t)count * (size_t)bound, sizeof(float));
  if (!t->start || !t->weights) return -1;
  int n = 1;
  for (int i = 0; i < count; i++) {
    double center = (first + i + 0.5) * scale;
    int lo = (int)floor(center - width + 0.5), hi = (int)floor(center + width + 0.5);
    if (lo < 0) lo = 0;
    if (hi > in_size) hi = in_size;
    if (hi - lo > bound) hi = lo + bound;
    if (hi <= lo) { /* cannot happen for a valid plan; keep one tap in range rather than trust it */
      lo = lo < in_size ? lo : in_size - 1;
      hi = lo + 1;
    }
    double sum = 0, w[64 + 1];
    double *weights = hi - lo <= 64 ? w : malloc(sizeof(double) * (size_t)(hi - lo));
    if (!weights) return -1;
    for (int x = lo; x < hi; x++) {
      double d = fabs((x + 0.5 - center) / width);
      weights[x - lo] = d < 1.0 ? 1.0 - d : 0.0;
      sum += weights[x - lo];
    }
    /* Trim zero-weight ends so `n` is the real support. */
    int a = 0, b = hi - lo;
    while (a < b - 1 && weights[a] == 0) a++;
    while (b > a + 1 && weights[b - 1] == 0) b--;
    t->start[i] = lo + a;
    float *row = t->weights + (size_t)i * bound;
    for (int k = a; k < b; k++) row[k - a] = sum > 0 ? (float)(weights[k] / sum) : (k == a ? 1.0f : 0.0f);
    if (b - a > n) n = b - a;
    if (weights != w) free(weights);
  }
  /* Repack to a stride of n (rows only move down in memory, so in place); windows that would run past the end move
   * left and their weights right (a row's real support m satisfies start + m <= in_size, so m <= n - shift). */
  for (int i = 0; i < count; i++) {
    float *dst = t->weights + (size_t)i * n;
    int shift = t->start[i] + n > in_size ? t->start[i] + n - in_size : 0;
    memmove(dst, t->weights + (size_t)i * bound, sizeof(float) * (size_t)n);
    if (shift) {
      memmove(dst + shift, dst, sizeof(float) * (size_t)(n - shift));
      memset(dst, 0, sizeof(float) * (size_t)shift);
      t->start[i] -= shift;
    }
  }
  t->n = n;
  return 0;
}

static void free_taps(Taps *t) {
  free(t->start);
  free(t->weights);
}

/* Horizontal pass over one row of interleaved RGB floats into three plane rows of bytes. One pixel's r, g, b ride in one
 * 4-lane vector (GCC/Clang vector extensions: SSE on x86-64, NEON on arm64, plain code elsewhere; the fourth lane
 * reads the next pixel's red and is ignored), with n taps known at compile time for the usual reductions so the
 * body unrolls, and a generic loop for the rest. Rounds like an 8-bit pipeline would (PIL and libvips store uint8
 * between steps: adding and subtracting 1.5·2²³ rounds a float in 0…2²² to the nearest integer without a libm call).
 * The filter is a convex combination of 0…255 values, so the rounded value is a byte without a clamp. */
typedef float v4f __attribute__((vector_size(16)));

static inline v4f load4(const float *s) {
  v4f v;
  memcpy(&v, s, sizeof(v));
  return v;
}

static inline v4f splat(float x) { return (v4f){x, x, x, x}; }

static inline void store3(v4f acc, unsigned char *r, unsigned char *g, unsigned char *b) {
  const v4f magic = splat(12582912.0f);
  acc = (acc + magic) - magic;
  *r = (unsigned char)acc[0];
  *g = (unsigned char)acc[1];
  *b = (unsigned char)acc[2];
}

#define HPASS(N)                                                                                                   \
  static void hpass_##N(const float *row, const Taps *cols, int crop, unsigned char *r, unsigned char *g,          \
                        unsigned char *b) {                                                                        \
    for (int x = 0; x < crop; x++) {                                                                               \
      const float *w = cols->weights + (size_t)x * (N), *s = row + (size_t)cols->start[x] * 3;                     \
      v4f acc = splat(w[0]) * load4(s);                                                                            \
      for (int k = 1; k < (N); k++) acc += splat(w[k]) * load4(s + 3 * k);                                         \
      store3(acc, r + x, g + x, b + x);                                                                            \
    }                                                                                                              \
  }
HPASS(1)
HPASS(2)
HPASS(3)
HPASS(4)
HPASS(5)
HPASS(6)

static void hpass_any(const float *row, const Taps *cols, int crop, unsigned char *r, unsigned char *g,
                      unsigned char *b) {
  int n = cols->n;
  for (int x = 0; x < crop; x++) {
    const float *w = cols->weights + (size_t)x * n, *s = row + (size_t)cols->start[x] * 3;
    v4f acc = splat(w[0]) * load4(s);
    for (int k = 1; k < n; k++) acc += splat(w[k]) * load4(s + 3 * k);
    store3(acc, r + x, g + x, b + x);
  }
}

/* One tap of the vertical pass: acc (+)= w · src over a whole row span. Kept out of line with restrict pointers:
 * inlined into jp_preprocess, GCC 12 -O3 left these loops scalar (callgrind: 4.4M instructions per 768×576 image
 * instead of 1.2M). */
__attribute__((noinline)) static void vtap_first(float *restrict acc, const unsigned char *restrict src, float w, int n) {
  for (int i = 0; i < n; i++) acc[i] = w * (float)src[i];
}

__attribute__((noinline)) static void vtap_add(float *restrict acc, const unsigned char *restrict src, float w, int n) {
  for (int i = 0; i < n; i++) acc[i] += w * (float)src[i];
}

static void set_error(char *error, size_t size, const char *message) {
  if (size) snprintf(error, size, "%s", message);
}

/* Whole numbers only, in [lo, hi]: a NaN, an infinity or a fraction in a plan is a caller's bug, not a size. */
static int whole(double v, double lo, double hi) { return v >= lo && v <= hi && v == floor(v); }

/*
 * Decodes `jpeg` and writes the plan's centre crop into `out` as three planes of crop×crop bytes. Returns 0, or -1
 * with a message in `error`. `max_pixels` caps the JPEG's full size (width × height) before anything is allocated.
 * Thread-safe; the libuv pool calls it concurrently.
 */
static int jp_preprocess(const unsigned char *jpeg, size_t jpeg_size, unsigned char *out, size_t out_values, const double *p,
                         double max_pixels, char *error, size_t error_size) {
  if (error_size) error[0] = 0;
  for (int i = 0; i < JP_PLAN_LENGTH; i++) {
    if (!isfinite(p[i])) {
      set_error(error, error_size, "the resize plan holds a number that is not finite");
      return -1;
    }
  }
  if (!whole(p[0], 1, JP_MAX_RESIZED) || !whole(p[1], 1, JP_MAX_RESIZED) || !whole(p[2], 0, JP_MAX_RESIZED) ||
      !whole(p[3], 0, JP_MAX_RESIZED) || !whole(p[4], 1, JP_MAX_CROP)) {
    set_error(error, error_size, "the resize plan is out of range");
    return -1;
  }
  int resized_w = (int)p[0], resized_h = (int)p[1], left = (int)p[2], top = (int)p[3], crop = (int)p[4];
  if ((size_t)crop * crop * 3 > out_values || left + crop > resized_w || top + crop > resized_h) {
    set_error(error, error_size, "output buffer or crop does not fit the resize plan");
    return -1;
  }
  if (!jpeg || jpeg_size == 0 || jpeg_size > ULONG_MAX) {
    set_error(error, error_size, "empty JPEG data");
    return -1;
  }
  tjhandle tj = tjInitDecompress();
  if (!tj) {
    set_error(error, error_size, "libjpeg-turbo could not start");
    return -1;
  }
  unsigned char *pixels = NULL;
  Taps cols = {0}, rows = {0};
  float *vertical = NULL;
  int width, height, subsampling, colorspace, status = -1;
  if (tjDecompressHeader3(tj, jpeg, (unsigned long)jpeg_size, &width, &height, &subsampling, &colorspace) != 0) goto fail;
  if (width < 1 || height < 1 || (double)width * height > max_pixels) {
    set_error(error, error_size, "the JPEG's size is zero or over the pixel limit");
    goto done;
  }

  /* The smallest DCT scale whose output still covers the resize target, but not below 1/2: the 2×2 and 1×1 inverse
   * DCTs of scales 1/4 and 1/8 shift the model's probabilities by up to 7e-2 on the sample photos, 1/2 by < 1e-2. */
  int count = 0;
  tjscalingfactor *factors = tjGetScalingFactors(&count);
  int scaled_w = width, scaled_h = height;
  for (int i = 0; factors && i < count; i++) {
    tjscalingfactor f = factors[i];
    int w = TJSCALED(width, f), h = TJSCALED(height, f);
    if (f.num <= f.denom && 2 * f.num >= f.denom && w >= resized_w && h >= resized_h &&
        (long long)w * h < (long long)scaled_w * scaled_h) {
      scaled_w = w;
      scaled_h = h;
    }
  }
  pixels = malloc((size_t)scaled_w * scaled_h * 3);
  if (!pixels) goto oom;
  if (tjDecompress2(tj, jpeg, (unsigned long)jpeg_size, pixels, scaled_w, 0, scaled_h, TJPF_RGB, TJFLAG_STOPONWARNING) != 0)
    goto fail;

  if (make_taps(&cols, scaled_w, resized_w, left, crop) != 0 || make_taps(&rows, scaled_h, resized_h, top, crop) != 0)
    goto oom;

  /* Vertical pass first, over only the source columns the crop needs: contiguous rows of interleaved RGB, so the
   * multiply-adds run over whole rows and vectorise. Then the horizontal pass, per output row, straight into the
   * three output planes. (The filter is separable and nothing is rounded in between, so the order is free.) */
  int first_col = cols.start[0], last_col = 0;
  for (int x = 0; x < crop; x++) {
    if (cols.start[x] < first_col) first_col = cols.start[x];
    if (cols.start[x] + cols.n > last_col) last_col = cols.start[x] + cols.n;
  }
  int span = (last_col - first_col) * 3;
  /* + 4: the horizontal pass loads 4 floats for a pixel's 3 */
  vertical = calloc((size_t)span + 4, sizeof(float));
  if (!vertical) goto oom;
  size_t plane = (size_t)crop * crop, stride = (size_t)scaled_w * 3;
  for (int x = 0; x < crop; x++) cols.start[x] -= first_col; /* now indexes `vertical` */
  for (int y = 0; y < crop; y++) {
    const float *w = rows.weights + (size_t)y * rows.n;
    const unsigned char *src = pixels + (size_t)rows.start[y] * stride + (size_t)first_col * 3;
    vtap_first(vertical, src, w[0], span);
    for (int k = 1; k < rows.n; k++) vtap_add(vertical, src + (size_t)k * stride, w[k], span);
    unsigned char *r = out + (size_t)y * crop, *g = r + plane, *b = g + plane;
    switch (cols.n) {
      case 1: hpass_1(vertical, &cols, crop, r, g, b); break;
      case 2: hpass_2(vertical, &cols, crop, r, g, b); break;
      case 3: hpass_3(vertical, &cols, crop, r, g, b); break;
      case 4: hpass_4(vertical, &cols, crop, r, g, b); break;
      case 5: hpass_5(vertical, &cols, crop, r, g, b); break;
      case 6: hpass_6(vertical, &cols, crop, r, g, b); break;
      default: hpass_any(vertical, &cols, crop, r, g, b);
    }
  }
  status = 0;
  goto done;
oom:
  set_error(error, error_size, "out of memory");
  goto done;
fail:
  set_error(error, error_size, tjGetErrorStr2(tj));
  if (error_size && !error[0]) set_error(error, error_size, "JPEG decoding failed");
done:
  free(vertical);
  free_taps(&cols);
  free_taps(&rows);
  free(pixels);
  tjDestroy(tj);
  return status;
}

#ifndef JPEG_PREPROCESS_NO_NAPI
#include <node_api.h>

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref input_ref, output_ref;
  const unsigned char *jpeg;
  size_t jpeg_size;
  unsigned char *out;
  size_t out_values;
  double plan[JP_PLAN_LENGTH];
  char error[200];
} Job;

static void execute(napi_env env, void *data) {
  (void)env;
  Job *job = data;
  if (jp_preprocess(job->jpeg, job->jpeg_size, job->out, job->out_values, job->plan, JP_DEFAULT_MAX_PIXELS, job->error,
                    sizeof(job->error)) != 0 &&
      !job->error[0])
    strcpy(job->error, "JPEG preprocessing failed");
}

static void complete(napi_env env, napi_status status, void *data) {
  Job *job = data;
  if (status != napi_ok && !job->error[0]) strcpy(job->error, "preprocessing was cancelled");
  if (job->error[0]) {
    napi_value message, error;
    napi_create_string_utf8(env, job->error, NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, NULL, message, &error);
    napi_reject_deferred(env, job->deferred, error);
  } else {
    napi_value undefined;
    napi_get_undefined(env, &undefined);
    napi_resolve_deferred(env, job->deferred, undefined);
  }
  napi_delete_reference(env, job->input_ref);
  napi_delete_reference(env, job->output_ref);
  napi_delete_async_work(env, job->work);
  free(job);
}

static napi_value throw_type_error(napi_env env, const char *message) {
  napi_throw_type_error(env, NULL, message);
  return NULL;
}

static napi_value preprocess(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3)
    return throw_type_error(env, "preprocess(jpeg: Uint8Array, out: Uint8Array, plan: Float64Array)");
  napi_typedarray_type type;
  size_t length;
  void *bytes;
  bool is_typed;
  /* napi_get_typedarray_info on a non-typed-array value is an error, so check first; argument mistakes throw. */
  if (napi_is_typedarray(env, argv[0], &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, argv[0], &type, &length, &bytes, NULL, NULL) != napi_ok || type != napi_uint8_array)
    return throw_type_error(env, "jpeg must be a Uint8Array");
  const unsigned char *jpeg = bytes;
  size_t jpeg_size = length;
  if (napi_is_typedarray(env, argv[1], &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, argv[1], &type, &length, &bytes, NULL, NULL) != napi_ok || type != napi_uint8_array)
    return throw_type_error(env, "out must be a Uint8Array");
  unsigned char *out = bytes;
  size_t out_values = length;
  if (napi_is_typedarray(env, argv[2], &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, argv[2], &type, &length, &bytes, NULL, NULL) != napi_ok || type != napi_float64_array ||
      length != JP_PLAN_LENGTH)
    return throw_type_error(env, "plan must be a Float64Array of 5 numbers");

  Job *job = calloc(1, sizeof(Job));
  if (!job) return throw_type_error(env, "out of memory");
  job->jpeg = jpeg;
  job->jpeg_size = jpeg_size;
  job->out = out;
  job->out_values = out_values;
  memcpy(job->plan, bytes, sizeof(job->plan));

  /* Keep both buffers alive (and unmoved) until the work completes. (A caller must not transfer or detach them
   * meanwhile: the pool thread reads and writes their memory.) */
  napi_value promise, name;
  if (napi_create_promise(env, &job->deferred, &promise) != napi_ok) {
    free(job);
    return throw_type_error(env, "could not create a promise");
  }
  if (napi_create_reference(env, argv[0], 1, &job->input_ref) != napi_ok ||
      napi_create_reference(env, argv[1], 1, &job->output_ref) != napi_ok ||
      napi_create_string_utf8(env, "batchwise:jpeg_preprocess", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, execute, complete, job, &job->work) != napi_ok ||
      napi_queue_async_work(env, job->work) != napi_ok) {
    /* Settle the promise here rather than leave it pending forever. */
    napi_value message, error;
    napi_create_string_utf8(env, "could not queue JPEG preprocessing", NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, NULL, message, &error);
    napi_reject_deferred(env, job->deferred, error);
    if (job->input_ref) napi_delete_reference(env, job->input_ref);
    if (job->output_ref) napi_delete_reference(env, job->output_ref);
    if (job->work) napi_delete_async_work(env, job->work);
    free(job);
  }
  return promise;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "preprocess", NAPI_AUTO_LENGTH, preprocess, NULL, &fn);
  napi_set_named_property(env, exports, "preprocess", fn);
  return exports;
}
#endif
