/**
 * collectd-dotnet - plugin/dump_exec.h
 *
 * Method exec: running the createdump that ships next to the target's
 * libcoreclr.so, without a shell, with no more privilege than the target's
 * own user has. Two steps, so that the caller can prepare a staging
 * directory that the chosen user can write before anything runs:
 *
 *   dump_exec_plan()     finds createdump, decides who runs it (plan->uid,
 *                        plan->gid) and says why in plan->note;
 *   dump_exec_run()      runs it on the target, writing out_path, and waits
 *                        (Timeout) for it;
 *   dump_exec_release()  frees what the plan holds.
 *
 * Who runs createdump. createdump reads the target's memory and its maps,
 * and loads the runtime's DAC (libmscordaccore.so) from the directory of
 * the first module named libcoreclr.so in the target's link map: a
 * directory the target chooses. So createdump runs as root only for a
 * target that is root already and no less than collectd (every capability
 * collectd has, collectd's user namespace, no seccomp filter collectd does
 * not have, collectd's LSM label), and only when createdump, the DAC
 * beside it and every directory from / (the target's root, for a target
 * in another mount namespace) down to them are root-owned and not
 * group/other-writable: opened one component at a time with O_NOFOLLOW,
 * and createdump executed from that very file descriptor, so nothing can
 * be swapped in between. Any other target's createdump runs as the
 * target's uid and gid, without supplementary groups and with
 * no_new_privs, and writes the dump through a descriptor of a file made
 * for it; where that cannot attach (Yama ptrace_scope >= 1, a non-dumpable
 * or set-id target, a confined root target, a non-root target in another
 * mount namespace, whose program would run outside its container) the
 * plan is refused and the message says to use Method ipc. Either way the
 * child inherits no other file descriptor, works in /, reads /dev/null,
 * gets an environment of a fixed PATH only, and the target's start time
 * is checked while the plan is made and again right before createdump is
 * executed, so a reused pid is refused.
 */
#ifndef DUMP_EXEC_H
#define DUMP_EXEC_H

#include "dump.h"
#include "ipc.h"

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct dump_exec_plan {
  int fd;              /* the createdump to run as root (O_PATH), or -1: then
                          it is opened by path after the child became uid */
  char path[PATH_MAX]; /* where it was found: for messages, and what the
                          child opens when fd is -1 */
  uid_t uid;           /* who runs it */
  gid_t gid;
  int drop;       /* 1: the child switches to uid/gid, no groups,
                     no_new_privs before it executes createdump */
  char note[256]; /* what was decided and why, "" when nothing to say */
};

/* 0 with plan filled, or negative errno with why[] saying what is wrong and
 * what to do. */
int dump_exec_plan(const struct ipc_endpoint *ep, struct dump_exec_plan *plan,
                   char *why, size_t why_cap);

/* Runs the plan's createdump on ep, writing out_path. When the plan drops
 * to a user (plan->drop), out_path must not exist and its directory must
 * belong to plan->uid (the staging directory): it is created here (O_EXCL,
 * O_NOFOLLOW), given to the user and handed to createdump as a descriptor,
 * so that the directories above it may stay root's only. 0, or negative
 * errno with res->reason filled. */
int dump_exec_run(const struct dump_exec_plan *plan,
                  const struct ipc_endpoint *ep, const char *out_path,
                  enum ipc_dump_type type, int timeout_ms,
                  struct dump_result *res);

void dump_exec_release(struct dump_exec_plan *plan);

/* The parts, exposed for the unit tests. */

/* Reads a /proc/<pid>/maps stream from fd (lines of any length; a line
 * longer than PATH_MAX + 128 bytes is skipped whole) and copies into lib
 * the path of the first mapping whose file is named libcoreclr.so.
 * 0: found; -ESTALE: found, but the kernel marks it " (deleted)" (lib holds
 * the path without the mark); -ENOENT: none; -ENAMETOOLONG: none, but an
 * over-long line was skipped; another negative errno when reading fails. */
int dump_exec_maps_find(int fd, char *lib, size_t cap);

/* Opens the absolute path under root_fd (AT_FDCWD: "/") one component at a
 * time with O_PATH | O_NOFOLLOW and checks that the root directory, every
 * directory on the way and the file itself are owned by root and not
 * writable by group or others, that no component is a symbolic link, "."
 * or "..", and that the file is a regular executable. 0 with *fd_out an
 * O_PATH descriptor of the file (the caller closes it), or negative errno
 * (-EPERM for a check that failed) with why[] naming the component. */
int dump_exec_open_trusted(int root_fd, const char *path, int *fd_out,
                           char *why, size_t why_cap);

/* Field 22 (start time) of a /proc/<pid>/stat line, without libc calls
 * beyond what is async-signal-safe. 0, or -EINVAL. */
int dump_exec_stat_start(const char *line, uint64_t *start);

#endif /* DUMP_EXEC_H */
