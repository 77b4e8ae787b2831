/**
 * collectd-dotnet - plugin/dump_exec.h
 *
 * Method exec: running the createdump that ships next to the target's
 * libcoreclr.so, without a shell, with no more privilege than the files it
 * comes from allow. Two steps, so that the caller can prepare a staging
 * directory that the chosen user can write before anything runs:
 *
 *   dump_exec_plan()     finds createdump, decides who runs it (plan->uid,
 *                        plan->gid) and says why in plan->note;
 *   dump_exec_run()      runs it on the target, writing out_path, and waits
 *                        (Timeout) for it;
 *   dump_exec_release()  frees what the plan holds.
 */
#ifndef DUMP_EXEC_H
#define DUMP_EXEC_H

#include "dump.h"
#include "ipc.h"

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

struct dump_exec_plan {
  int fd;              /* the createdump to run, or -1 */
  char path[PATH_MAX]; /* where it was found, for messages */
  uid_t uid;           /* who runs it */
  gid_t gid;
  char note[256];      /* what was decided and why, "" when nothing to say */
};

/* 0 with plan filled, or negative errno with why[] saying what is wrong and
 * what to do. */
int dump_exec_plan(const struct ipc_endpoint *ep, struct dump_exec_plan *plan,
                   char *why, size_t why_cap);

/* Runs the plan's createdump on ep, writing out_path. 0, or negative errno
 * with res->reason filled. */
int dump_exec_run(const struct dump_exec_plan *plan,
                  const struct ipc_endpoint *ep, const char *out_path,
                  enum ipc_dump_type type, int timeout_ms,
                  struct dump_result *res);

void dump_exec_release(struct dump_exec_plan *plan);

#endif /* DUMP_EXEC_H */
