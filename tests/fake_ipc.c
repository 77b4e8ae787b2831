/**
 * collectd-dotnet - tests/fake_ipc.c
 *
 * The scripted IPC calls of tests/fake_ipc.h. A call is a session's
 * (the `fake_ipc` script) when no process of the table has its pid.
 */
#include "fake_ipc.h"

#include "clock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_STREAM_BYTES (1 << 20)

struct fake_ipc fake_ipc;
pthread_mutex_t fake_lock = PTHREAD_MUTEX_INITIALIZER;
struct fake_proc fake_procs[FAKE_PROCS_MAX];
size_t fake_nprocs;

void fake_procs_reset(void) {
  for (size_t i = 0; i < fake_nprocs; i++)
    if (fake_procs[i].stream_peer >= 0)
      close(fake_procs[i].stream_peer);
  memset(fake_procs, 0, sizeof(fake_procs));
  fake_nprocs = 0;
}

struct fake_proc *fake_proc_add(pid_t pid, uid_t uid) {
  struct fake_proc *p = &fake_procs[fake_nprocs++];
  *p = (struct fake_proc){
      .ep = {.pid = pid, .start_time = 1000u + (unsigned)pid, .uid = uid},
      .listed = 1,
      .alive = 1,
      .stream_peer = -1};
  snprintf(p->entry, sizeof(p->entry), "App");
  return p;
}

/* The table's process of ep, or NULL; under fake_lock. */
static struct fake_proc *proc_of(const struct ipc_endpoint *ep) {
  for (size_t i = 0; i < fake_nprocs; i++)
    if (fake_procs[i].ep.pid == ep->pid)
      return &fake_procs[i];
  return NULL;
}

/* The fake's call: opaque to its users, as the engine's is. */
struct ipc_call {
  struct ipc_endpoint ep;
  int fd;
  int64_t deadline;
};

/* A call in flight whose answer is in: its fd is readable at once. */
static int call_ready(struct ipc_call **cp, const struct ipc_endpoint *ep,
                      int timeout_ms) {
  *cp = NULL;
  struct ipc_call *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return -ENOMEM;
  c->ep = *ep;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    free(c);
    return -errno;
  }
  close(sv[1]); /* its end: readable */
  c->fd = sv[0];
  c->deadline = clock_mono_ms() + timeout_ms;
  *cp = c;
  return -EINPROGRESS;
}

/* A stream: *fd the session's end, *peer the runtime's. */
static int stream_pair(int *fd, int *peer) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) !=
      0)
    return -errno;
  *fd = sv[0];
  *peer = sv[1];
  return 0;
}

/* The fixture file, opened from the first directory that has it. */
static FILE *stream_open(int argc, char **argv) {
  char here[2048], path[4200];
  snprintf(here, sizeof(here), "%s", __FILE__);
  char *slash = strrchr(here, '/');
  snprintf(slash != NULL ? slash : here,
           sizeof(here) - (size_t)(slash != NULL ? slash - here : 0),
           slash != NULL ? "/fixtures" : "tests/fixtures");
  const char *dirs[] = {argc > 1 ? argv[1] : NULL, getenv("TEST_FIXTURES"),
                        here};
  for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
    if (dirs[i] == NULL || dirs[i][0] == 0)
      continue;
    snprintf(path, sizeof(path), "%s/counters-net10.nettrace", dirs[i]);
    FILE *f = fopen(path, "rb");
    if (f != NULL)
      return f;
  }
  return NULL;
}

int fake_stream_load(int argc, char **argv, uint8_t **buf, size_t *len) {
  FILE *f = stream_open(argc, argv);
  if (f == NULL)
    return -ENOENT;
  *buf = malloc(MAX_STREAM_BYTES);
  *len = *buf != NULL ? fread(*buf, 1, MAX_STREAM_BYTES, f) : 0;
  fclose(f);
  return *len > 0 && *len < MAX_STREAM_BYTES ? 0 : -EIO;
}

void fake_ipc_reset(void) {
  if (fake_ipc.stream_peer > 0)
    close(fake_ipc.stream_peer);
  memset(&fake_ipc, 0, sizeof(fake_ipc));
  fake_ipc.begin_result = -EINPROGRESS;
  fake_ipc.session_id = 42;
  fake_ipc.message = "scripted failure";
  fake_ipc.stream_peer = -1;
}

static int fail(int r, struct ipc_error *err) {
  snprintf(err->message, sizeof(err->message), "%s", fake_ipc.message);
  return r;
}

void ipc_call_close(struct ipc_call **c) {
  if (c == NULL || *c == NULL)
    return;
  if ((*c)->fd >= 0)
    close((*c)->fd);
  free(*c);
  *c = NULL;
}

int ipc_call_fd(const struct ipc_call *c) { return c ? c->fd : -1; }

int64_t ipc_call_deadline(const struct ipc_call *c) {
  return c ? c->deadline : INT64_MAX;
}

const struct ipc_endpoint *ipc_call_endpoint(const struct ipc_call *c) {
  return &c->ep;
}

int ipc_call_step(struct ipc_call *c, struct ipc_error *err) {
  (void)c;
  (void)err;
  return 0; /* the reply is in */
}

int ipc_call_wait(struct ipc_call *c, struct ipc_error *err) {
  (void)c;
  (void)err;
  return 0; /* the reply is in */
}

int ipc_collect_begin(struct ipc_call **c, const struct ipc_endpoint *ep,
                      const struct ipc_provider *providers, size_t n,
                      uint32_t buffer_mb, unsigned flags, int timeout_ms,
                      struct ipc_error *err) {
  (void)buffer_mb;
  fake_ipc.rundown = (flags & IPC_COLLECT_RUNDOWN) != 0;
  (void)err;
  pthread_mutex_lock(&fake_lock);
  struct fake_proc *p = proc_of(ep);
  if (p != NULL) {
    p->begins++;
    p->begin_wall = clock_wall_ms();
  }
  pthread_mutex_unlock(&fake_lock);
  if (p != NULL)
    return call_ready(c, ep, timeout_ms);
  fake_ipc.begins++;
  fake_ipc.nproviders = n < 8 ? n : 8;
  for (size_t i = 0; i < fake_ipc.nproviders; i++) {
    snprintf(fake_ipc.providers[i], sizeof(fake_ipc.providers[i]), "%s",
             providers[i].name);
    snprintf(fake_ipc.filters[i], sizeof(fake_ipc.filters[i]), "%s",
             providers[i].filter ? providers[i].filter : "");
    fake_ipc.keywords[i] = providers[i].keywords;
  }
  if (fake_ipc.begin_result != -EINPROGRESS) {
    *c = NULL;
    return fail(fake_ipc.begin_result, err);
  }
  return call_ready(c, ep, timeout_ms);
}

int ipc_collect_step(struct ipc_call *c, int *fd, uint64_t *session_id,
                     struct ipc_error *err) {
  pthread_mutex_lock(&fake_lock);
  struct fake_proc *p = proc_of(&c->ep);
  int r = p != NULL ? stream_pair(fd, &p->stream_peer) : 1;
  pthread_mutex_unlock(&fake_lock);
  if (p != NULL) {
    *session_id = 7;
    return r;
  }
  fake_ipc.steps++;
  if (fake_ipc.step_pending > 0) {
    fake_ipc.step_pending--;
    return -EINPROGRESS;
  }
  if (fake_ipc.step_result != 0)
    return fail(fake_ipc.step_result, err);
  r = stream_pair(fd, &fake_ipc.stream_peer);
  *session_id = fake_ipc.session_id;
  return r;
}

int ipc_stop_tracing(const struct ipc_endpoint *ep, uint64_t session_id,
                     int timeout_ms, struct ipc_error *err) {
  (void)ep;
  (void)timeout_ms;
  fake_ipc.stops++;
  fake_ipc.stopped_id = session_id;
  if (fake_ipc.stop_result != 0)
    return fail(fake_ipc.stop_result, err);
  if (fake_ipc.stop_tail_len > 0 &&
      send(fake_ipc.stream_peer, fake_ipc.stop_tail, fake_ipc.stop_tail_len,
           MSG_NOSIGNAL) != (ssize_t)fake_ipc.stop_tail_len)
    return -EIO;
  if (fake_ipc.close_on_stop) {
    close(fake_ipc.stream_peer);
    fake_ipc.stream_peer = -1;
  }
  return 0;
}

/* ---- the watch's side: discovery, ProcessInfo, liveness ---- */

struct discovery {
  int unused;
};

struct discovery *discovery_new(void) {
  return calloc(1, sizeof(struct discovery));
}

void discovery_free(struct discovery *d) { free(d); }

int discovery_scan(struct discovery *d, discovery_cb cb, void *ctx) {
  (void)d;
  struct ipc_endpoint eps[FAKE_PROCS_MAX];
  size_t n = 0;
  pthread_mutex_lock(&fake_lock);
  for (size_t i = 0; i < fake_nprocs; i++)
    if (fake_procs[i].listed)
      eps[n++] = fake_procs[i].ep;
  pthread_mutex_unlock(&fake_lock);
  for (size_t i = 0; i < n; i++) {
    int r = cb(ctx, &eps[i]);
    if (r != 0)
      return r;
  }
  return 0;
}

/* no notification: the connector passes every discovery interval */
unsigned discovery_full_passes(const struct discovery *d) {
  (void)d;
  return 0;
}
int discovery_enable_notify(struct discovery *d) {
  (void)d;
  return -ENOSYS;
}
int discovery_notify_fd(const struct discovery *d) {
  (void)d;
  return -1;
}
int discovery_notified(struct discovery *d) {
  (void)d;
  return 0;
}
void discovery_want_full(struct discovery *d) { (void)d; }
void discovery_set_connected(struct discovery *d, discovery_connected_fn fn,
                                 void *ctx) {
  (void)d;
  (void)fn;
  (void)ctx;
}
void discovery_set_log(struct discovery *d, discovery_log_fn fn,
                           void *ctx) {
  (void)d;
  (void)fn;
  (void)ctx;
}

int discovery_alive(const struct ipc_endpoint *ep) {
  pthread_mutex_lock(&fake_lock);
  struct fake_proc *p = proc_of(ep);
  int alive = p != NULL && p->alive;
  pthread_mutex_unlock(&fake_lock);
  return alive;
}

int ipc_probe_start(struct ipc_call **c, const struct ipc_endpoint *ep,
                    int timeout_ms, struct ipc_error *err) {
  pthread_mutex_lock(&fake_lock);
  struct fake_proc *p = proc_of(ep);
  int refused = p != NULL && p->refusals > 0;
  if (p != NULL) {
    p->probes++;
    p->refusals -= refused;
  }
  pthread_mutex_unlock(&fake_lock);
  if (p == NULL || refused) {
    *c = NULL;
    snprintf(err->message, sizeof(err->message),
             "cannot connect: Connection refused");
    return -ECONNREFUSED;
  }
  return call_ready(c, ep, timeout_ms);
}

int ipc_probe_step(struct ipc_call *c, struct ipc_process_info *info,
                   struct ipc_error *err) {
  pthread_mutex_lock(&fake_lock);
  struct fake_proc *p = proc_of(&c->ep);
  int r = p != NULL ? p->probe_result : -ESRCH;
  if (r == 0) {
    memset(info, 0, sizeof(*info));
    snprintf(info->entry_assembly, sizeof(info->entry_assembly), "%s",
             p->entry);
    snprintf(info->runtime_version, sizeof(info->runtime_version), "10.0");
  }
  pthread_mutex_unlock(&fake_lock);
  if (r != 0)
    snprintf(err->message, sizeof(err->message),
             "no answer from the runtime in time");
  return r;
}

/* StopTracing at the end (watch_stop): nobody listens */
int ipc_stop_begin(struct ipc_call **c, const struct ipc_endpoint *ep,
                   uint64_t session_id, int timeout_ms, int connect_ms,
                   struct ipc_error *err) {
  (void)ep;
  (void)session_id;
  (void)timeout_ms;
  (void)connect_ms;
  (void)err;
  *c = NULL;
  return -ECONNREFUSED;
}

void ipc_sanitize(char *s) { (void)s; }
void ipc_set_cancel_fd(int fd) { (void)fd; }

/* The runtimes that connect in (listen.c, linked from the library) ask
 * /proc of their peers: none here. */
int discovery_process(pid_t pid, struct ipc_endpoint *ep, const char *name) {
  (void)pid, (void)ep, (void)name;
  return -ESRCH;
}

int ipc_resume_runtime(const struct ipc_endpoint *ep, int timeout_ms,
                       struct ipc_error *err) {
  (void)ep, (void)timeout_ms, (void)err;
  return 0;
}
