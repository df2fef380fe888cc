{
  "targets": [
    {
      "target_name": "memcached_ts_native",
      "sources": ["memcached_ts_native.c"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags": ["-std=c11", "-Wall", "-Wextra", "-O2"]
    }
  ]
}
