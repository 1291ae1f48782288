{
  "targets": [
    {
      "target_name": "noop",
      "sources": ["noop.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-O2", "-fvisibility=hidden", "-Wall", "-Wextra"]
    }
  ]
}
