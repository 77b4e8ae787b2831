/**
 * collectd-dotnet - tests/fake_ipc.c
 *
 * The scripted IPC calls of tests/fake_ipc.h.
 */
#include "fake_ipc.h"

#include "clock.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct fake_ipc fake_ipc;

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

void ipc_call_close(struct ipc_call *c) {
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
}

int ipc_call_wait(struct ipc_call *c, struct ipc_error *err) {
  (void)c;
  (void)err;
  return 0; /* the reply is in */
}

int ipc_collect_begin(struct ipc_call *c, const struct ipc_endpoint *ep,
                      const struct ipc_provider *providers, size_t n,
                      uint32_t buffer_mb, int timeout_ms,
                      struct ipc_error *err) {
  (void)buffer_mb;
  fake_ipc.begins++;
  fake_ipc.nproviders = n < 8 ? n : 8;
  for (size_t i = 0; i < fake_ipc.nproviders; i++) {
    snprintf(fake_ipc.providers[i], sizeof(fake_ipc.providers[i]), "%s",
             providers[i].name);
    snprintf(fake_ipc.filters[i], sizeof(fake_ipc.filters[i]), "%s",
             providers[i].filter ? providers[i].filter : "");
    fake_ipc.keywords[i] = providers[i].keywords;
  }
  memset(c, 0, sizeof(*c));
  c->ep = *ep;
  c->fd = -1;
  if (fake_ipc.begin_result != -EINPROGRESS)
    return fail(fake_ipc.begin_result, err);
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return -errno;
  close(sv[1]); /* the call's fd: readable (its end) at once */
  c->fd = sv[0];
  c->deadline = clock_mono_ms() + timeout_ms;
  return -EINPROGRESS;
}

int ipc_collect_step(struct ipc_call *c, int *fd, uint64_t *session_id,
                     struct ipc_error *err) {
  fake_ipc.steps++;
  if (fake_ipc.step_pending > 0) {
    fake_ipc.step_pending--;
    return -EINPROGRESS;
  }
  ipc_call_close(c);
  if (fake_ipc.step_result != 0)
    return fail(fake_ipc.step_result, err);
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) !=
      0)
    return -errno;
  *fd = sv[0];
  fake_ipc.stream_peer = sv[1];
  *session_id = fake_ipc.session_id;
  return 0;
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
