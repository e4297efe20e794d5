/*
 * A JS string over a Buffer's bytes without copying them: latin1String(bytes: Uint8Array, start, end) → string.
 *
 * Why: the server lifts long base64 values out of JSON bodies (src/server/json-body.ts). Made with toString, each is a
 * fresh V8 string over 128 KiB, which V8 places in its own mapping: on a virtual machine the page faults of that copy
 * cost more than the rest of the request's main-thread work. An external string reads the body's bytes in place; the
 * body stays alive (a reference) until V8 collects the string. The caller passes printable ASCII only (Latin-1 is a
 * superset) and never mutates the bytes afterwards.
 *
 * printableAscii(bytes, start, end) → boolean checks that promise first, where JavaScript would need a regular expression
 * over a string copy. Both throw a TypeError for arguments of the wrong type and a RangeError for a range outside the
 * bytes.
 */
#define NAPI_VERSION 8
#define NAPI_EXPERIMENTAL
#include <node_api.h>
#include <stdlib.h>

/* Deleting the reference needs a full napi_env: a collected string's finalizer (which runs inside the GC) posts it. */
static void release_bytes(napi_env env, void *data, void *hint) {
  (void)data;
  napi_delete_reference(env, (napi_ref)hint);
}

static void string_collected(node_api_basic_env env, void *data, void *hint) {
  node_api_post_finalizer(env, release_bytes, data, hint);
}

static napi_value throw_error(napi_env env, int range, const char *message) {
  if (range) napi_throw_range_error(env, NULL, message);
  else napi_throw_type_error(env, NULL, message);
  return NULL;
}

/* The bytes and the [start, end) range of a (bytes: Uint8Array, start, end) call; false when it threw. */
static bool read_range(napi_env env, napi_callback_info info, const char *usage, unsigned char **from, size_t *count,
                       napi_value *bytes_value) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3) return throw_error(env, 0, usage), false;
  bool is_typed = false;
  napi_typedarray_type type;
  size_t length;
  void *bytes;
  if (napi_is_typedarray(env, argv[0], &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, argv[0], &type, &length, &bytes, NULL, NULL) != napi_ok || type != napi_uint8_array)
    return throw_error(env, 0, "bytes must be a Uint8Array"), false;
  double start, end;
  if (napi_get_value_double(env, argv[1], &start) != napi_ok || napi_get_value_double(env, argv[2], &end) != napi_ok)
    return throw_error(env, 0, "start and end must be numbers"), false;
  if (!(start >= 0 && start <= end && end <= (double)length) || start != (double)(size_t)start || end != (double)(size_t)end)
    return throw_error(env, 1, "start and end must be whole numbers with 0 <= start <= end <= bytes.length"), false;
  *from = (unsigned char *)bytes + (size_t)start;
  *count = (size_t)(end - start);
  *bytes_value = argv[0];
  return true;
}

static napi_value latin1_string(napi_env env, napi_callback_info info) {
  unsigned char *from;
  size_t count;
  napi_value bytes;
  if (!read_range(env, info, "latin1String(bytes: Uint8Array, start: number, end: number)", &from, &count, &bytes)) return NULL;
  napi_ref keep;
  if (napi_create_reference(env, bytes, 1, &keep) != napi_ok) return throw_error(env, 0, "could not reference the bytes");
  napi_value result;
  bool copied = false;
  /* When V8 copies instead (e.g. a short string), it has already called the finalizer, which releases `keep`. */
  if (node_api_create_external_string_latin1(env, (char *)from, count, string_collected, keep, &result, &copied) != napi_ok) {
    napi_delete_reference(env, keep);
    return throw_error(env, 0, "could not create the string");
  }
  return result;
}

/*
 * printableAscii(bytes, start, end): every byte in the range is 0x20..0x7f, i.e. the range may stand in a JSON string
 * as it is (no control characters, no UTF-8). A loop the compiler vectorises, in blocks so a bad byte early stops it;
 * a regular expression over the string did the same at a fraction of the speed.
 */
static napi_value printable_ascii(napi_env env, napi_callback_info info) {
  unsigned char *from;
  size_t count;
  napi_value bytes;
  if (!read_range(env, info, "printableAscii(bytes: Uint8Array, start: number, end: number)", &from, &count, &bytes)) return NULL;
  unsigned char bad = 0;
  for (size_t block = 0; block < count && !bad; block += 4096) {
    size_t stop = block + 4096 < count ? block + 4096 : count;
    /* (byte - 0x20) wraps below 0x20: one unsigned compare catches both ends */
    for (size_t i = block; i < stop; i++) bad |= (unsigned char)(from[i] - 0x20) >= 0x60;
  }
  napi_value result;
  napi_get_boolean(env, !bad, &result);
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  if (napi_create_function(env, "latin1String", NAPI_AUTO_LENGTH, latin1_string, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "latin1String", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "printableAscii", NAPI_AUTO_LENGTH, printable_ascii, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "printableAscii", fn) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
