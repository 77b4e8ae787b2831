/**
 * collectd-dotnet - tests/fuzz/fuzz_ipc.c
 *
 * libFuzzer target: the pure decoders of the Diagnostic IPC client.
 *
 * Input layout:
 *   uint8 ctl      bit 0: ProcessInfo2 (else ProcessInfo); the whole byte
 *                  is also the output capacity of the ipc_take_string run
 *   rest           used three ways: its first 20 bytes as a message header
 *                  (ipc_header_decode), all of it as a ProcessInfo reply
 *                  payload (ipc_process_info_decode), and as a sequence of
 *                  protocol strings (ipc_take_string until it fails)
 *
 * Checked beyond the sanitizers: a failed take leaves the cursor alone;
 * outputs are NUL-terminated within their capacity; a decoded string
 * re-encoded by ipc_put_string decodes to itself; header encode/decode
 * round-trip.
 */
#include "../../plugin/ipc.h"
#include "../../plugin/wire.h"

#include <stdint.h>
#include <string.h>

static void check_terminated(const char *s, size_t cap) {
  if (cap > 0 && memchr(s, 0, cap) == NULL)
    __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  uint8_t ctl = data[0];
  const uint8_t *p = data + 1;
  size_t n = size - 1;

  /* header */
  if (n >= IPC_HEADER_SIZE) {
    uint8_t set = 0, id = 0;
    long plen = ipc_header_decode(p, &set, &id);
    if (plen >= 0) {
      if (plen > IPC_MAX_MESSAGE - IPC_HEADER_SIZE || set != p[16] ||
          id != p[17])
        __builtin_trap();
      /* re-encode what it said and decode again */
      static uint8_t msg[IPC_MAX_MESSAGE];
      long m = ipc_message_encode(msg, sizeof(msg), set, id, NULL, 0);
      uint8_t set2 = 0, id2 = 0;
      if (m != IPC_HEADER_SIZE || ipc_header_decode(msg, &set2, &id2) != 0 ||
          set2 != set || id2 != id)
        __builtin_trap();
    }
  }

  /* ProcessInfo reply */
  struct ipc_process_info info;
  if (ipc_process_info_decode(p, n, ctl & 1, &info) == 0) {
    check_terminated(info.command_line, sizeof(info.command_line));
    check_terminated(info.os, sizeof(info.os));
    check_terminated(info.arch, sizeof(info.arch));
    check_terminated(info.entry_assembly, sizeof(info.entry_assembly));
    check_terminated(info.runtime_version, sizeof(info.runtime_version));
  }

  /* strings, one after another, into a buffer of `ctl` bytes */
  struct wire_cursor c = wire_cursor(p, n);
  char out[256], again[256];
  size_t cap = ctl;
  while (c.len > 0) {
    struct wire_cursor before = c;
    memset(out, 0x55, sizeof(out));
    if (ipc_take_string(&c, out, cap) != 0) {
      if (c.p != before.p || c.len != before.len)
        __builtin_trap();
      break;
    }
    if (c.len + 4 > before.len)
      __builtin_trap(); /* a string takes at least its length */
    check_terminated(out, cap);
    if (cap == 0)
      continue;
    /* round trip through the encoder */
    uint8_t enc[4 + 2 * 256 + 2];
    long e = ipc_put_string(enc, sizeof(enc), 0, out);
    if (e < 0)
      __builtin_trap(); /* what we decode is valid UTF-8 that fits */
    struct wire_cursor ec = wire_cursor(enc, (size_t)e);
    if (ipc_take_string(&ec, again, sizeof(again)) != 0 || ec.len != 0 ||
        strcmp(out, again) != 0)
      __builtin_trap();
  }
  return 0;
}
