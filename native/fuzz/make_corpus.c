/*
 * Writes the seed corpus for the native JPEG fuzz target (fuzz_target.c) from the sample photos, with libjpeg-turbo's
 * own encoder (libjpeg API: everything TurboJPEG 2.1 cannot set, like arithmetic coding and CMYK). No downloaded
 * corpus: every seed is made here, deterministically.
 *   make_corpus OUT_DIR [PHOTO.jpg ...]   (no photo: a synthetic gradient stands in)
 * Each seed is FUZZ_PLAN_BYTES of plan choice (fuzz_input.h) followed by a JPEG. What the seeds cover:
 *   - every photo shrunk to small sizes (1×1, 1×N, N×1, odd sizes with partial MCUs, up to ~200 px: fuzzing speed)
 *   - baseline, progressive, arithmetic-coded (sequential and progressive), optimised Huffman tables, restart
 *     markers (every MCU, every few MCUs, per row), quality 1 (16-bit quantisation tables) to 100, smoothing
 *   - chroma sampling 4:4:4, 4:2:2, 4:2:0, 4:4:0, 4:1:1, 4:1:0-like 4×2, 3×1, and chroma sampled above luma
 *   - greyscale, CMYK, YCCK (Adobe marker), RGB stored without the YCbCr transform
 *   - COM, APP1, APP2 markers
 *   - structural damage spliced into valid files: zero height (DNL) and zero width, huge dimensions, dimensions
 *     larger than the data, truncations (inside headers, inside scans), missing EOI, a SOF marker swapped for
 *     progressive / arithmetic / lossless / 12-bit ones, restart markers spliced into a scan, segments duplicated
 *     or dropped (DHT, DQT, SOS), a segment length past the end, a second SOI
 *   - plans of every kind: the classifier's, arbitrary integers, hostile numbers, a short output buffer
 */
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>
#include <turbojpeg.h>

#define PLAN_BYTES 9

static const char *out_dir;
static int seeds;
static uint32_t lcg = 12345;

static uint32_t next_random(void) {
  lcg = lcg * 1103515245u + 12345u;
  return lcg >> 8;
}

static void write_seed(const char *name, const unsigned char *plan, const unsigned char *jpeg, size_t size) {
  char path[4096];
  snprintf(path, sizeof(path), "%s/%04d-%s", out_dir, seeds++, name);
  FILE *f = fopen(path, "wb");
  if (!f) {
    perror(path);
    exit(1);
  }
  fwrite(plan, 1, PLAN_BYTES, f);
  fwrite(jpeg, 1, size, f);
  fclose(f);
}

/* A plan prefix: mostly the classifier's shape (kind 0), the others now and then. */
static void random_plan(unsigned char plan[PLAN_BYTES]) {
  for (int i = 0; i < PLAN_BYTES; i++) plan[i] = (unsigned char)next_random();
  uint32_t r = next_random() % 10;
  plan[0] = (unsigned char)((plan[0] & ~7) | (r < 6 ? 0 : r < 8 ? 2 : 3));
  if (r == 9) plan[0] |= 4; /* short output buffer */
  if (r < 6) plan[1] = (unsigned char)(8 + next_random() % 64); /* short side 9…72: fast, and scale ≥ 1/2 engages */
}

typedef struct {
  struct jpeg_error_mgr mgr;
  jmp_buf jump;
} ErrorJump;

static void error_exit(j_common_ptr cinfo) { longjmp(((ErrorJump *)cinfo->err)->jump, 1); }

static void quiet(j_common_ptr cinfo) { (void)cinfo; } /* e.g. "tables too coarse for baseline" at quality 1 */

typedef enum { YCC, GREY, CMYK, YCCK, RGB_STORED } Colour;

typedef struct {
  const char *name;
  Colour colour;
  int h, v;          /* luma sampling factors (chroma 1×1), or chroma's when chroma_high */
  int chroma_high;   /* chroma sampled at h×v, luma at 1×1 */
  int quality, progressive, arithmetic, restart_blocks, restart_rows, optimize, smoothing, markers;
} Variant;

static const Variant variants[] = {
    {"baseline-420", YCC, 2, 2, 0, 75, 0, 0, 0, 0, 0, 0, 0},
    {"baseline-444-q100", YCC, 1, 1, 0, 100, 0, 0, 0, 0, 0, 0, 1},
    {"baseline-422-q1", YCC, 2, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0},
    {"baseline-440", YCC, 1, 2, 0, 60, 0, 0, 0, 0, 1, 0, 0},
    {"baseline-411", YCC, 4, 1, 0, 80, 0, 0, 0, 0, 0, 0, 0},
    {"baseline-42x", YCC, 4, 2, 0, 85, 0, 0, 0, 0, 0, 0, 0},
    {"baseline-31", YCC, 3, 1, 0, 70, 0, 0, 0, 0, 0, 0, 0},
    {"chroma-above-luma", YCC, 2, 2, 1, 70, 0, 0, 0, 0, 0, 0, 0},
    {"restart-every-mcu", YCC, 2, 2, 0, 75, 0, 0, 1, 0, 0, 0, 0},
    {"restart-3", YCC, 2, 1, 0, 75, 0, 0, 3, 0, 1, 0, 0},
    {"restart-rows", YCC, 1, 1, 0, 75, 0, 0, 0, 1, 0, 0, 0},
    {"smoothing", YCC, 2, 2, 0, 75, 0, 0, 0, 0, 0, 50, 0},
    {"progressive-420", YCC, 2, 2, 0, 75, 1, 0, 0, 0, 0, 0, 1},
    {"progressive-444-restart", YCC, 1, 1, 0, 90, 1, 0, 2, 0, 0, 0, 0},
    {"arithmetic-420", YCC, 2, 2, 0, 75, 0, 1, 0, 0, 0, 0, 0},
    {"arithmetic-progressive", YCC, 2, 1, 0, 75, 1, 1, 0, 0, 0, 0, 0},
    {"arithmetic-restart", YCC, 1, 1, 0, 75, 0, 1, 1, 0, 0, 0, 0},
    {"grey", GREY, 1, 1, 0, 75, 0, 0, 0, 0, 0, 0, 0},
    {"grey-progressive", GREY, 1, 1, 0, 75, 1, 0, 0, 0, 0, 0, 0},
    {"grey-arithmetic", GREY, 1, 1, 0, 75, 0, 1, 2, 0, 0, 0, 0},
    {"cmyk", CMYK, 1, 1, 0, 75, 0, 0, 0, 0, 0, 0, 1},
    {"ycck", YCCK, 2, 2, 0, 75, 0, 0, 0, 0, 0, 0, 0},
    {"cmyk-progressive", CMYK, 1, 1, 0, 75, 1, 0, 0, 0, 0, 0, 0},
    {"rgb-stored", RGB_STORED, 1, 1, 0, 75, 0, 0, 0, 0, 0, 0, 0},
    {"rgb-stored-arithmetic", RGB_STORED, 1, 1, 0, 75, 0, 1, 0, 0, 0, 0, 0},
};

/* Encodes an RGB image as the variant says; returns a malloc'd JPEG (NULL if libjpeg refused the combination). */
static unsigned char *encode(const unsigned char *rgb, int width, int height, const Variant *v, unsigned long *size) {
  struct jpeg_compress_struct cinfo;
  ErrorJump err;
  unsigned char *volatile buffer = NULL;
  unsigned char *volatile row = NULL;
  unsigned long buffer_size = 0;
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = error_exit;
  err.mgr.output_message = quiet;
  if (setjmp(err.jump)) {
    jpeg_destroy_compress(&cinfo);
    free(buffer);
    free(row);
    return NULL;
  }
  jpeg_create_compress(&cinfo);
  unsigned char *dest = NULL;
  jpeg_mem_dest(&cinfo, &dest, &buffer_size);
  int components = v->colour == GREY ? 1 : v->colour == CMYK || v->colour == YCCK ? 4 : 3;
  cinfo.image_width = (JDIMENSION)width;
  cinfo.image_height = (JDIMENSION)height;
  cinfo.input_components = components;
  cinfo.in_color_space = components == 1 ? JCS_GRAYSCALE : components == 4 ? JCS_CMYK : JCS_RGB;
  jpeg_set_defaults(&cinfo);
  if (v->colour == YCCK) jpeg_set_colorspace(&cinfo, JCS_YCCK);
  if (v->colour == RGB_STORED) jpeg_set_colorspace(&cinfo, JCS_RGB);
  jpeg_set_quality(&cinfo, v->quality, v->quality >= 25);
  if (components >= 3) {
    for (int c = 0; c < cinfo.num_components; c++) cinfo.comp_info[c].h_samp_factor = cinfo.comp_info[c].v_samp_factor = 1;
    if (v->chroma_high) {
      cinfo.comp_info[1].h_samp_factor = cinfo.comp_info[2].h_samp_factor = v->h;
      cinfo.comp_info[1].v_samp_factor = cinfo.comp_info[2].v_samp_factor = v->v;
    } else {
      cinfo.comp_info[0].h_samp_factor = v->h;
      cinfo.comp_info[0].v_samp_factor = v->v;
      if (components == 4) cinfo.comp_info[3].h_samp_factor = v->h, cinfo.comp_info[3].v_samp_factor = v->v;
    }
  }
  if (v->progressive) jpeg_simple_progression(&cinfo);
  cinfo.arith_code = v->arithmetic ? TRUE : FALSE;
  cinfo.restart_interval = (unsigned)v->restart_blocks;
  cinfo.restart_in_rows = v->restart_rows;
  cinfo.optimize_coding = v->optimize ? TRUE : FALSE;
  cinfo.smoothing_factor = v->smoothing;
  jpeg_start_compress(&cinfo, TRUE);
  if (v->markers) {
    static const char comment[] = "batchwise fuzz seed";
    jpeg_write_marker(&cinfo, JPEG_COM, (const JOCTET *)comment, sizeof(comment) - 1);
    static const unsigned char exif[] = "Exif\0\0MM\0*\0\0\0\x08\0\0";
    jpeg_write_marker(&cinfo, JPEG_APP0 + 1, exif, sizeof(exif) - 1);
    static const unsigned char icc[] = "ICC_PROFILE\0\x01\x01not really a profile";
    jpeg_write_marker(&cinfo, JPEG_APP0 + 2, icc, sizeof(icc) - 1);
  }
  row = malloc((size_t)width * (size_t)components);
  while (cinfo.next_scanline < cinfo.image_height) {
    const unsigned char *src = rgb + (size_t)cinfo.next_scanline * width * 3;
    for (int x = 0; x < width; x++) {
      const unsigned char *p = src + 3 * x;
      if (components == 1) row[x] = (unsigned char)((77 * p[0] + 150 * p[1] + 29 * p[2]) >> 8);
      else if (components == 3) memcpy(row + 3 * x, p, 3);
      else {
        int k = 255 - (p[0] > p[1] ? (p[0] > p[2] ? p[0] : p[2]) : (p[1] > p[2] ? p[1] : p[2]));
        row[4 * x] = (unsigned char)(255 - p[0] - k > 0 ? 255 - p[0] - k : 0);
        row[4 * x + 1] = (unsigned char)(255 - p[1] - k > 0 ? 255 - p[1] - k : 0);
        row[4 * x + 2] = (unsigned char)(255 - p[2] - k > 0 ? 255 - p[2] - k : 0);
        row[4 * x + 3] = (unsigned char)k;
      }
    }
    JSAMPROW rows[1] = {row};
    jpeg_write_scanlines(&cinfo, rows, 1);
  }
  jpeg_finish_compress(&cinfo);
  buffer = dest;
  jpeg_destroy_compress(&cinfo);
  free(row);
  *size = buffer_size;
  return buffer;
}

/* Box-filter resize of an RGB image (seeds only need plausible pixels). */
static unsigned char *resize(const unsigned char *rgb, int width, int height, int w, int h) {
  unsigned char *out = malloc((size_t)w * h * 3);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      memcpy(out + ((size_t)y * w + x) * 3, rgb + ((size_t)(y * height / h) * width + (size_t)(x * width / w)) * 3, 3);
  return out;
}

/* Offset of the first marker `code` (0xFF code) at or after `from`, or -1. */
static long find_marker(const unsigned char *jpeg, size_t size, unsigned char code, size_t from) {
  for (size_t i = from; i + 1 < size; i++)
    if (jpeg[i] == 0xFF && jpeg[i + 1] == code) return (long)i;
  return -1;
}

static long find_sof(const unsigned char *jpeg, size_t size) {
  for (size_t i = 2; i + 1 < size; i++)
    if (jpeg[i] == 0xFF && (jpeg[i + 1] == 0xC0 || jpeg[i + 1] == 0xC1 || jpeg[i + 1] == 0xC2 || jpeg[i + 1] == 0xC9 ||
                            jpeg[i + 1] == 0xCA))
      return (long)i;
  return -1;
}

/* Damaged copies of one valid JPEG. */
static void damage(const char *name, const unsigned char *jpeg, size_t size) {
  unsigned char plan[PLAN_BYTES];
  unsigned char *copy = malloc(size + 4096);
  char label[600];
  long sof = find_sof(jpeg, size), sos = find_marker(jpeg, size, 0xDA, 2);
  if (sof < 0 || sos < 0) {
    free(copy);
    return;
  }
  static const struct {
    const char *what;
    int height, width;
  } sizes[] = {{"zero-height", 0, -1}, {"zero-width", -1, 0}, {"huge", 65535, 65535}, {"tall", 65000, 1},
               {"larger-than-data", -2, -2}};
  for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
    memcpy(copy, jpeg, size);
    int h = (copy[sof + 5] << 8) | copy[sof + 6], w = (copy[sof + 7] << 8) | copy[sof + 8];
    int nh = sizes[s].height == -1 ? h : sizes[s].height == -2 ? h * 3 : sizes[s].height;
    int nw = sizes[s].width == -1 ? w : sizes[s].width == -2 ? w * 2 : sizes[s].width;
    copy[sof + 5] = (unsigned char)(nh >> 8), copy[sof + 6] = (unsigned char)nh;
    copy[sof + 7] = (unsigned char)(nw >> 8), copy[sof + 8] = (unsigned char)nw;
    random_plan(plan);
    snprintf(label, sizeof(label), "%s-%s", name, sizes[s].what);
    write_seed(label, plan, copy, size);
  }
  /* SOF type swapped: progressive, arithmetic, lossless (unsupported), 12-bit precision (unsupported here). */
  static const unsigned char sof_types[] = {0xC0, 0xC2, 0xC9, 0xCA, 0xC3, 0xC1};
  for (size_t t = 0; t < sizeof(sof_types); t++) {
    memcpy(copy, jpeg, size);
    copy[sof + 1] = sof_types[t];
    if (t == sizeof(sof_types) - 1) copy[sof + 4] = 12;
    random_plan(plan);
    snprintf(label, sizeof(label), "%s-sof%02x", name, sof_types[t]);
    write_seed(label, plan, copy, size);
  }
  /* Truncations: in the headers, just after SOS, half-way, one byte short, no EOI. */
  size_t cuts[] = {3, (size_t)sof + 6, (size_t)sos + 4, (size_t)sos + 20, size / 2, size - 3, size - 2};
  for (size_t c = 0; c < sizeof(cuts) / sizeof(cuts[0]); c++) {
    if (cuts[c] >= size) continue;
    random_plan(plan);
    snprintf(label, sizeof(label), "%s-cut%zu", name, cuts[c]);
    write_seed(label, plan, jpeg, cuts[c]);
  }
  /* Splices into the scan: restart markers where none are expected, an early EOI, a DHT segment copied after SOS. */
  size_t scan = (size_t)sos + ((jpeg[sos + 2] << 8) | jpeg[sos + 3]) + 2;
  if (scan + 16 < size) {
    static const unsigned char splices[][4] = {{0xFF, 0xD0, 0, 0}, {0xFF, 0xD7, 0, 0}, {0xFF, 0xD9, 0, 0}, {0xFF, 0xDD, 0, 4}};
    for (size_t k = 0; k < sizeof(splices) / sizeof(splices[0]); k++) {
      size_t at = scan + 1 + next_random() % (size - scan - 4);
      size_t n = splices[k][1] == 0xDD ? 4 : 2;
      memcpy(copy, jpeg, at);
      memcpy(copy + at, splices[k], n);
      memcpy(copy + at + n, jpeg + at, size - at);
      random_plan(plan);
      snprintf(label, sizeof(label), "%s-splice%02x", name, splices[k][1]);
      write_seed(label, plan, copy, size + n);
    }
  }
  /* Segments dropped or duplicated. */
  static const unsigned char segments[] = {0xC4, 0xDB, 0xDA, 0xDD};
  for (size_t k = 0; k < sizeof(segments); k++) {
    long at = find_marker(jpeg, size, segments[k], 2);
    if (at < 0 || (size_t)at + 4 > size) continue;
    size_t length = ((size_t)jpeg[at + 2] << 8 | jpeg[at + 3]) + 2;
    if ((size_t)at + length > size) continue;
    memcpy(copy, jpeg, (size_t)at);
    memcpy(copy + at, jpeg + at + length, size - at - length);
    random_plan(plan);
    snprintf(label, sizeof(label), "%s-drop%02x", name, segments[k]);
    write_seed(label, plan, copy, size - length);
    if (length <= 4096) {
      memcpy(copy, jpeg, (size_t)at + length);
      memcpy(copy + at + length, jpeg + at, size - at);
      random_plan(plan);
      snprintf(label, sizeof(label), "%s-twice%02x", name, segments[k]);
      write_seed(label, plan, copy, size + length);
    }
  }
  /* A segment length past the end of the file, and a second SOI inside the headers. */
  memcpy(copy, jpeg, size);
  copy[sof + 2] = 0xFF, copy[sof + 3] = 0xF0;
  random_plan(plan);
  snprintf(label, sizeof(label), "%s-long-segment", name);
  write_seed(label, plan, copy, size);
  memcpy(copy, jpeg, 2);
  memcpy(copy + 2, jpeg, size);
  random_plan(plan);
  snprintf(label, sizeof(label), "%s-double-soi", name);
  write_seed(label, plan, copy, size + 2);
  free(copy);
}

static void seeds_from(const char *photo_name, const unsigned char *rgb, int width, int height) {
  static const int shapes[][2] = {{1, 1}, {1, 37}, {37, 1}, {8, 8}, {17, 9}, {33, 47}, {64, 48}, {96, 72}, {130, 97}, {200, 150}};
  char label[256];
  unsigned char plan[PLAN_BYTES];
  for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
    int w = shapes[s][0], h = shapes[s][1];
    unsigned char *small = resize(rgb, width, height, w, h);
    for (size_t v = 0; v < sizeof(variants) / sizeof(variants[0]); v++) {
      /* every variant at a few sizes, the baseline at all of them */
      if (v != 0 && (s + v) % 3 != 0) continue;
      unsigned long size = 0;
      unsigned char *jpeg = encode(small, w, h, &variants[v], &size);
      if (!jpeg) continue;
      random_plan(plan);
      snprintf(label, sizeof(label), "%s-%dx%d-%s", photo_name, w, h, variants[v].name);
      write_seed(label, plan, jpeg, size);
      if (s == 6 || (s == 4 && v % 4 == 0)) damage(label, jpeg, size);
      free(jpeg);
    }
    free(small);
  }
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: make_corpus OUT_DIR [PHOTO.jpg ...]\n");
    return 2;
  }
  out_dir = argv[1];
  if (argc == 2) {
    int w = 160, h = 120;
    unsigned char *rgb = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++) {
        unsigned char *p = rgb + ((size_t)y * w + x) * 3;
        p[0] = (unsigned char)(x * 255 / w), p[1] = (unsigned char)(y * 255 / h), p[2] = (unsigned char)((x ^ y) & 255);
      }
    seeds_from("gradient", rgb, w, h);
    free(rgb);
  }
  for (int i = 2; i < argc; i++) {
    FILE *f = fopen(argv[i], "rb");
    if (!f) {
      perror(argv[i]);
      return 1;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *data = malloc((size_t)n);
    if (fread(data, 1, (size_t)n, f) != (size_t)n) return 1;
    fclose(f);
    tjhandle tj = tjInitDecompress();
    int width, height, subsampling, colorspace;
    if (tjDecompressHeader3(tj, data, (unsigned long)n, &width, &height, &subsampling, &colorspace) != 0) {
      fprintf(stderr, "%s: %s\n", argv[i], tjGetErrorStr2(tj));
      return 1;
    }
    /* decode at 1/4 or less: the seeds are small anyway */
    tjscalingfactor quarter = {1, 4};
    int w = TJSCALED(width, quarter), h = TJSCALED(height, quarter);
    unsigned char *rgb = malloc((size_t)w * h * 3);
    if (tjDecompress2(tj, data, (unsigned long)n, rgb, w, 0, h, TJPF_RGB, 0) != 0) {
      fprintf(stderr, "%s: %s\n", argv[i], tjGetErrorStr2(tj));
      return 1;
    }
    tjDestroy(tj);
    const char *base = strrchr(argv[i], '/');
    char name[64];
    snprintf(name, sizeof(name), "%s", base ? base + 1 : argv[i]);
    char *dot = strchr(name, '.');
    if (dot) *dot = 0;
    seeds_from(name, rgb, w, h);
    free(rgb);
    free(data);
  }
  printf("%d seeds in %s\n", seeds, out_dir);
  return 0;
}
