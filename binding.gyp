{
  "variables": {
    # node-gyp rebuild --sanitize=true: an ASan + UBSan build for the tests.
    "sanitize%": "false"
  },
  "targets": [
    {
      "target_name": "named_semaphore",
      "sources": ["src/addon.cc", "src/async_waits.cc", "src/env_data.cc", "src/semaphore.cc", "src/waiter.cc", "src/futex_ring.cc", "src/share_sum.cc", "src/listen_queue.cc", "src/cxx_compat.cc"],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api"
      ],
      # NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS: node-addon-api's throw in a
      # worker being terminated is a no-op, not a fatal error.
      "defines": ["NAPI_VERSION=8", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "cflags": ["-fvisibility=hidden", "-Wall", "-Wextra"],
      "cflags_cc": ["-fvisibility=hidden", "-Wall", "-Wextra", "-std=c++17"],
      "ldflags": [
        # Name libpthread as needed: on glibc < 2.34 the pinned sem_* symbols
        # live there (see src/glibc_compat.h).
        "-Wl,--no-as-needed", "-l:libpthread.so.0", "-Wl,--as-needed"
      ],
      "conditions": [
        ["sanitize=='true'", {
          "cflags": ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"],
          "cflags_cc": ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"],
          "ldflags": ["-fsanitize=address,undefined"]
        }]
      ]
    }
  ]
}
