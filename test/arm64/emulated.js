'use strict';
// Preloaded (NODE_OPTIONS=--require) into the emulated arm64 Node by
// test/arm64.sh. The tests start child processes with process.execPath, the
// arm64 binary, which this kernel cannot exec without a binfmt_misc
// registration; the wrapper script that runs it through qemu can.
if (process.arch === 'arm64' && process.env.NAMED_SEMAPHORE_ARM64_NODE) {
  process.execPath = process.env.NAMED_SEMAPHORE_ARM64_NODE;
}
