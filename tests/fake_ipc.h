/**
 * collectd-dotnet - tests/fake_ipc.h
 *
 * A fake of the IPC calls a session makes (ipc_collect_begin/step,
 * ipc_call_wait, ipc_call_close, ipc_stop_tracing), linked before the
 * library so that its ipc.o is not: what the "runtime" answers is
 * scripted here, and its stream is one end of a socketpair whose other
 * end the test writes nettrace bytes to.
 */
#ifndef FAKE_IPC_H
#define FAKE_IPC_H

#include "ipc.h"

#include <stddef.h>
#include <stdint.h>

struct fake_ipc {
  /* the script */
  int begin_result;  /* ipc_collect_begin: -EINPROGRESS, or a failure */
  int step_pending;  /* ipc_collect_step answers -EINPROGRESS this often */
  int step_result;   /* then this (0: the stream runs) */
  uint64_t session_id;
  const char *message; /* err->message of a failure */
  int stop_result;     /* ipc_stop_tracing: 0 or a failure */
  /* what ipc_stop_tracing makes the runtime do when it succeeds: write
   * these bytes to the stream, then close it (close_on_stop) */
  const uint8_t *stop_tail;
  size_t stop_tail_len;
  int close_on_stop;

  /* what the session did */
  int begins, steps, stops;
  uint64_t stopped_id;
  char providers[8][64];  /* the providers' names */
  char filters[8][2048];  /* and their filters */
  uint64_t keywords[8];
  size_t nproviders;
  int stream_peer; /* the runtime's end of the stream (the test writes) */
};

extern struct fake_ipc fake_ipc;

/* Sets the script to "everything works" (session id 42) and closes what
 * the last test left. */
void fake_ipc_reset(void);

#endif /* FAKE_IPC_H */
