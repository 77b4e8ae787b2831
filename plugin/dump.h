/**
 * collectd-dotnet - plugin/dump.h
 *
 * Making a core dump of a .NET process, safely: the runtime's
 * GenerateCoreDump IPC command (the target writes the dump itself, as its
 * own user) or the createdump that ships next to the target's
 * libcoreclr.so (run by us, no shell). Either way the file ends up as
 *   <directory>/<instance>-<pid>-<UTC timestamp>.dmp
 * mode 0600, never written through a symlink, never replacing a file.
 *
 * dump_take() is synchronous (seconds); the plugin calls it from its dump
 * worker thread (dump_worker_*), the CLI directly.
 */
#ifndef DUMP_H
#define DUMP_H

#include "ipc.h"

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

enum dump_method { DUMP_METHOD_IPC, DUMP_METHOD_EXEC };

struct dump_request {
  struct ipc_endpoint ep;   /* the target */
  char instance[128];       /* name part of the file; "" → "dotnet" */
  enum ipc_dump_type type;
  enum dump_method method;
  char directory[PATH_MAX]; /* created 0700 if missing */
  uint64_t min_free_bytes;  /* refuse below this free space; 0: no check */
  int timeout_ms;           /* whole dump; 0: 120000 */
};

struct dump_result {
  char path[PATH_MAX]; /* the dump, on success */
  uint64_t size;
  double seconds;
  char reason[512];    /* why it failed, on failure */
  char note[256];      /* what the operator should know of how it was made
                          (e.g. who ran createdump), "" when nothing */
};

/* 0 on success, negative errno with res->reason on failure. */
int dump_take(const struct dump_request *req, struct dump_result *res);

/* Parses "mini" | "heap" | "triage" | "full"; 0 or -EINVAL. */
int dump_type_parse(const char *s, enum ipc_dump_type *out);
const char *dump_type_name(enum ipc_dump_type t);

/* Parses sizes like "2G", "500M", "1024" (bytes; K/M/G/T binary). */
int dump_size_parse(const char *s, uint64_t *out);

/* Creates dir (and parents) with mode 0700 if missing; refuses a path
 * whose last component is a symlink. 0 or negative errno. */
int dump_mkdir(const char *dir);

#endif /* DUMP_H */
