/**
 * collectd-dotnet - tests/test_action.c
 *
 * The actions' own rules, without .NET: the defaults of each kind, the
 * MaxHeapSize refusal (no session is started: the endpoint is a socket that
 * would take one), and the failure of a run whose target is gone (a FAILURE
 * message naming the action and the pid, no result file).
 */
#include "action.h"
#include "testing.h"

#include <dirent.h>
#include <errno.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static char base[PATH_MAX];

static int count_entries(const char *p) {
  DIR *d = opendir(p);
  int n = 0;
  struct dirent *de;
  if (d == NULL)
    return 0; /* never made */
  while ((de = readdir(d)) != NULL)
    if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
      n++;
  closedir(d);
  return n;
}

static struct action_config config(enum action_kind kind) {
  struct action_config a = {0};
  snprintf(a.dump.directory, sizeof(a.dump.directory), "%s/out", base);
  action_defaults(&a, kind);
  return a;
}

DEF_TEST(defaults) {
  struct action_config a = config(ACTION_HEAP_TYPES);
  EXPECT_EQ_INT(300, (int)a.policy.min_interval_sec);
  EXPECT_EQ_INT(5, (int)a.policy.max_per_process);
  EXPECT_EQ_INT(20, (int)a.policy.max_total);
  EXPECT_EQ_INT(20, (int)a.top);
  CHECK(strstr(a.dump.directory, "/out") != NULL); /* kept */
  a = config(ACTION_ALLOC_TYPES);
  EXPECT_EQ_INT(60, (int)a.policy.min_interval_sec);
  EXPECT_EQ_INT(5, (int)a.duration_s);
  int k = -1;
  EXPECT_EQ_INT(0, dump_name_parse(action_kinds, "Heap-Types", &k));
  EXPECT_EQ_INT(ACTION_HEAP_TYPES, k);
  EXPECT_EQ_INT(-EINVAL, dump_name_parse(action_kinds, "heap", &k));
  return 0;
}

/* A socket where the endpoint says the runtime is: whoever connects is
 * counted (a listening socket's backlog), nothing answers. */
static int listener(struct ipc_endpoint *ep) {
  *ep = (struct ipc_endpoint){.pid = getpid(), .uid = getuid()};
  snprintf(ep->path, sizeof(ep->path), "%s/sock", base);
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof(a.sun_path), "%s", ep->path);
  unlink(ep->path);
  if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) != 0 ||
      listen(s, 8) != 0)
    return -1;
  return s;
}

DEF_TEST(max_heap_size) {
  struct ipc_endpoint ep;
  int s = listener(&ep);
  CHECK(s >= 0);
  struct action_config a = config(ACTION_HEAP_TYPES);
  a.max_heap_bytes = 4000000000ULL;
  struct action_result res;
  EXPECT_EQ_INT(-EFBIG, action_run(&a, &ep, "shop", 5000000000ULL, &res));
  CHECK(strstr(res.message, "heap-types of pid") != NULL);
  CHECK(strstr(res.message, "its GC heap is 5.00 GB, above MaxHeapSize "
                            "4.00 GB") != NULL);
  /* no session was asked for: nobody connected */
  int c = accept(s, NULL, NULL);
  EXPECT_EQ_INT(-1, c);
  EXPECT_EQ_INT(0, count_entries(a.dump.directory));
  close(s);
  return 0;
}

DEF_TEST(target_gone) {
  struct ipc_endpoint ep = {.pid = 999999, .uid = getuid()};
  snprintf(ep.path, sizeof(ep.path), "%s/no-such-socket", base);
  struct action_config a = config(ACTION_ALLOC_TYPES);
  a.duration_s = 0.2;
  struct action_result res;
  int r = action_run(&a, &ep, "shop", 0, &res);
  CHECK(r < 0);
  CHECK(strncmp(res.message, "alloc-types of pid 999999 failed: ", 34) == 0);
  EXPECT_EQ_INT(0, (int)res.file.path[0]);
  EXPECT_EQ_INT(0, count_entries(a.dump.directory));
  return 0;
}

int main(void) {
  snprintf(base, sizeof(base), "/tmp/test_action.XXXXXX");
  if (mkdtemp(base) == NULL)
    SKIP_ALL("mkdtemp failed");
  RUN_TEST(defaults);
  RUN_TEST(max_heap_size);
  RUN_TEST(target_gone);
  char p[PATH_MAX + 16];
  snprintf(p, sizeof(p), "%s/sock", base);
  unlink(p);
  rmdir(base);
  END_TEST;
}
