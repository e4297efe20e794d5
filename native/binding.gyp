{
  "targets": [
    {
      "target_name": "jpeg_preprocess",
      "sources": ["jpeg_preprocess.c"],
      "libraries": ["-lturbojpeg"],
      "cflags": ["-O3", "-std=c11"]
    },
    {
      "target_name": "latin1_string",
      "sources": ["latin1_string.c"],
      "cflags": ["-O3", "-std=c11"]
    }
  ]
}
