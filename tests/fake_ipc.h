/**
 * collectd-dotnet - tests/fake_ipc.h
 *
 * A fake of the IPC layer under a session and the watch's threads (every
 * ipc_* function they call), linked before the library so that its ipc.o
 * is not: what discovery lists and what each "runtime" answers is
 * scripted here, and a session's stream is one end of a socketpair whose
 * other end the test writes nettrace bytes to.
 *
 * Two scripts: `fake_ipc` for one session driven by the test's own thread
 * (test_session), and the table of processes (fake_proc_*) for the
 * watch's threads (test_connector), under fake_lock.
 */
#ifndef FAKE_IPC_H
#define FAKE_IPC_H

#include "discovery.h"
#include "ipc.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct fake_ipc {
  /* the script */
  int begin_result; /* ipc_collect_begin: -EINPROGRESS, or a failure */
  int step_pending; /* ipc_collect_step answers -EINPROGRESS this often */
  int step_result;  /* then this (0: the stream runs) */
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
  char providers[8][64]; /* the providers' names */
  char filters[8][2048]; /* and their filters */
  uint64_t keywords[8];
  int rundown; /* as CollectTracing2 asked */
  size_t nproviders;
  int stream_peer; /* the runtime's end of the stream (the test writes) */
};

extern struct fake_ipc fake_ipc;

/* Sets the script to "everything works" (session id 42) and closes what
 * the last test left. */
void fake_ipc_reset(void);

/* A recorded nettrace stream for the fake runtimes to send:
 * counters-net10.nettrace of the first of argv[1], $TEST_FIXTURES and
 * tests/fixtures that has it, into *buf (malloc'ed, the caller frees) and
 * *len. 0 or a negative errno. */
int fake_stream_load(int argc, char **argv, uint8_t **buf, size_t *len);

/* A process discovery lists, and how its runtime answers. */
struct fake_proc {
  struct ipc_endpoint ep;
  int listed;       /* discovery lists it */
  int alive;        /* discovery_alive */
  int refusals;     /* ProcessInfo connects refused before it listens */
  int probe_result; /* then: 0 answers, or this failure */
  char entry[64];   /* its entry assembly */
  /* what the watch did */
  int probes;         /* ProcessInfo connects tried (refused included) */
  int begins;         /* CollectTracing sent */
  int64_t begin_wall; /* when the last was (wall ms) */
  int stream_peer;    /* the runtime's end of its stream, or -1 */
};

#define FAKE_PROCS_MAX 8
extern pthread_mutex_t fake_lock; /* over the table */
extern struct fake_proc fake_procs[FAKE_PROCS_MAX];
extern size_t fake_nprocs;

/* Empties the table (closing the streams left). */
void fake_procs_reset(void);
/* Adds a listed, live process that answers (entry "App"); under no lock:
 * before the watch starts, or with fake_lock held. */
struct fake_proc *fake_proc_add(pid_t pid, uid_t uid);

#endif /* FAKE_IPC_H */
