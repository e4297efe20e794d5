{
  "targets": [
    {
      "target_name": "jpeg_preprocess",
      "sources": ["jpeg_preprocess.c"],
      "libraries": ["-lturbojpeg"],
      "cflags": ["-O3", "-std=c11"]
    }
  ]
}
