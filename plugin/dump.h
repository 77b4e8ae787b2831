/**
 * collectd-dotnet - plugin/dump.h
 *
 * Making a core dump of a .NET process, safely: the runtime's
 * GenerateCoreDump IPC command (the target writes the dump itself, as its
 * own user) or the createdump that ships next to the target's
 * libcoreclr.so (run by us, no shell). Either way the file ends up as
 *   <directory>/<instance>-<pid>-<UTC timestamp>.dmp (or the caller's name)
 * mode 0600, a fresh inode of ours (a copy of exactly what was checked: the
 * writer keeps no hold on it), never written through a symlink, never
 * replacing a file. The directory and every one above it must belong to
 * root (or to the user we run as) and not be writable by group or others
 * (above it: unless sticky); see dump_dir_open().
 *
 * dump_take() is synchronous (seconds); the plugin calls it from its dump
 * worker thread (dump_worker_*), the CLI directly.
 */
#ifndef DUMP_H
#define DUMP_H

#include "ipc.h"

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum dump_method { DUMP_METHOD_IPC, DUMP_METHOD_EXEC };

struct dump_request {
  struct ipc_endpoint ep; /* the target */
  char instance[128];     /* name part of the file; "" → "dotnet" */
  enum ipc_dump_type type;
  enum dump_method method;
  char directory[PATH_MAX]; /* created 0711 if missing (dump_dir_open) */
  uint64_t min_free_bytes;  /* refuse below this free space; 0: no check */
  int timeout_ms;           /* whole dump; 0: 120000 */
  /* the dump's name in directory (one component, never replaced);
   * "" → <instance>-<pid>-<UTC timestamp>.dmp */
  char file_name[NAME_MAX + 1];
};

struct dump_result {
  char path[PATH_MAX]; /* the dump, on success */
  uint64_t size;
  double seconds;
  char reason[512]; /* why it failed, on failure */
  char note[256];   /* what the operator should know of how it was made
                       (e.g. who ran createdump), "" when nothing */
};

/* Writes res->reason (cut to fit). */
void dump_say(struct dump_result *res, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* 0 on success, negative errno with res->reason on failure. */
int dump_take(const struct dump_request *req, struct dump_result *res);

/* A result file of ours in the dump directory (an action's
 * .heap-types.json, .alloc-types.json, .nettrace): the directory opened and
 * checked as for a dump (created when missing), a fresh 0600 inode of root's
 * written as the result comes, linked under its final name only when
 * complete, never over an existing name; an abandoned one leaves nothing. */
struct dump_file {
  int dfd, fd;                   /* the directory; the file (write to it) */
  char dir[PATH_MAX];            /* the directory's absolute path */
  char tmp_name[48];             /* where O_TMPFILE is missing */
  char final_name[NAME_MAX + 1]; /* <instance>-<pid>-<stamp><suffix> */
};

/* Opens the file for instance's process pid, named with suffix (".nettrace")
 * and refused when dir has less than min_free_bytes free (0: no check). 0,
 * or negative errno with res->reason (f is then closed). */
int dump_file_open(struct dump_file *f, const char *dir, const char *instance,
                   pid_t pid, const char *suffix, uint64_t min_free_bytes,
                   struct dump_result *res);
/* Links f under its final name and closes it: 0 with res->path and
 * res->size, or negative errno with res->reason (nothing left behind). */
int dump_file_commit(struct dump_file *f, struct dump_result *res);
/* Drops f (nothing left behind). Accepts a closed or never opened f
 * (fd and dfd -1). */
void dump_file_abort(struct dump_file *f);

/* Names of values, as the configuration and the CLI take them (in any
 * case); a table ends with a NULL name, and the first name of a value is
 * the one shown. */
struct dump_name {
  const char *name;
  int value;
};
/* enum ipc_dump_type: "mini" | "heap" | "triage" | "full" (and createdump's
 * "normal", "withheap"); enum dump_method: "ipc" | "exec" */
extern const struct dump_name dump_types[], dump_methods[];

/* The value of s in table: 0, or -EINVAL. */
int dump_name_parse(const struct dump_name *table, const char *s, int *value);
/* The name of value in table, "?" if none. */
const char *dump_name_of(const struct dump_name *table, int value);

/* Parses sizes like "2G", "500M", "1024" (bytes; K/M/G/T binary). */
int dump_size_parse(const char *s, uint64_t *out);

/* ---- building blocks, exposed for tests ---- */

/* The staging area inside the dump directory: root's, 0711. */
#define DUMP_STAGING_AREA ".staging"

/* Opens the dump directory dir (absolute, or relative to the current
 * directory), level by level from /, never following a symlink, creating
 * missing levels 0711 when create is set (others may pass through, not
 * list). Every level must belong to root or to our euid and not be writable
 * by group or others; a level above the last may be writable by others when
 * it is sticky (as /tmp). Returns an O_PATH directory fd (the caller closes
 * it), with canon[] the absolute path walked (may be NULL) and *others_reach
 * (may be NULL) 1 when every level lets others search it; or a negative
 * errno with why[] saying what is wrong and what to do. */
int dump_dir_open(const char *dir, int create, int *others_reach, char *canon,
                  size_t canon_cap, char *why, size_t why_cap);

/* Makes a private staging directory DUMP_STAGING_AREA/<32 random hex
 * digits> in dirfd (the area made 0711 when missing, and checked as the
 * dump directory is), mode 0700, owned by writer. Returns its fd (O_RDONLY
 * directory), with *area_fd the area's fd and name[] (>= 33 bytes) its name;
 * the caller closes both and calls dump_stage_remove. Negative errno with
 * why[] on failure. */
int dump_stage_new(int dirfd, uid_t writer, int *area_fd, char *name,
                   size_t name_cap, char *why, size_t why_cap);

/* Removes the staging directory name (fd stage_fd) from the area: each of
 * its entries is unlinked relative to stage_fd (a symlink itself, never what
 * it points to); a subdirectory goes only when empty and is never entered.
 * 0 when all went; else a negative errno with left[] saying what stays. */
int dump_stage_remove(int area_fd, const char *name, int stage_fd, char *left,
                      size_t left_cap);

/* Publishes the dump src_name of src_dirfd (shown as src_shown) as
 * final_name in dirfd (shown as dir_path): it must be one regular file (not a
 * link, not a directory, no other hard link), owned by writer, not empty;
 * exactly the size seen then is cloned or copied into a fresh 0600 inode of
 * ours (O_TMPFILE), linked under final_name, never over an existing name. The
 * copy is refused when it would leave less than min_free_bytes free (or does
 * not fit), and gives up at deadline_ms (clock_mono_ms clock; 0: none) or when
 * cancel_fd (-1: none) is readable. 0 with res->path and res->size, or negative
 * errno with res->reason. src_name is left where it is. */
int dump_publish(int src_dirfd, const char *src_name, const char *src_shown,
                 uid_t writer, int dirfd, const char *dir_path,
                 const char *final_name, uint64_t min_free_bytes,
                 int64_t deadline_ms, int cancel_fd, struct dump_result *res);

#endif /* DUMP_H */
