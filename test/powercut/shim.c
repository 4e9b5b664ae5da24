/*
 * A power cut, simulated (test/powercut.test.ts). LD_PRELOADed into relaybox, this shim keeps what
 * a disk would still hold after the power goes: after every real fsync/fdatasync of a file in
 * POWERCUT_DIR it copies the file to POWERCUT_SHADOW (its "durable" content), and after an fsync
 * of that directory it records the names in it (its durable entries). Writes never synced are
 * what a power cut loses; the test replaces the directory by the shadow after kill -9.
 *
 *   POWERCUT_DIR      the data_dir to watch (files directly in it)
 *   POWERCUT_SHADOW   where the durable copies go (.entries: the names at the last directory sync)
 *   POWERCUT_LOG      one line per sync seen, and per "queued as" reply written
 *   POWERCUT_CUT_AFTER_250=K   SIGKILL the process right after it wrote its K-th "250 ... queued as"
 *   POWERCUT_DROP_READONLY_SYNC=1  skip syncs through read-only descriptors (relaybox's WAL sync;
 *                  SQLite's own descriptors are read-write): shows that the test can fail
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int replies_250;
/* Set the instant the power goes: a sync that returns after it made nothing durable. */
static int cutting;

static void note(const char *fmt, ...) {
  const char *path = getenv("POWERCUT_LOG");
  if (!path) return;
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return;
  ssize_t (*real_write)(int, const void *, size_t) = dlsym(RTLD_NEXT, "write");
  if (n > 0) real_write(fd, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
  close(fd);
}

/* The watched directory's name for fd's file, or NULL; `dir` tells whether fd is the directory. */
static const char *watched(int fd, char *path, size_t size, int *dir) {
  const char *watch = getenv("POWERCUT_DIR");
  if (!watch) return NULL;
  char link[64];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, path, size - 1);
  if (n <= 0) return NULL;
  path[n] = 0;
  size_t w = strlen(watch);
  *dir = strcmp(path, watch) == 0;
  if (*dir) return path;
  if (strncmp(path, watch, w) != 0 || path[w] != '/' || strchr(path + w + 1, '/')) return NULL;
  return path + w + 1;
}

static void copy_file(const char *from, const char *to) {
  char tmp[4300];
  snprintf(tmp, sizeof tmp, "%s.tmp", to);
  int in = open(from, O_RDONLY | O_CLOEXEC);
  int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (in >= 0 && out >= 0) {
    ssize_t (*real_write)(int, const void *, size_t) = dlsym(RTLD_NEXT, "write");
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0) real_write(out, buf, (size_t)n);
  }
  if (in >= 0) close(in);
  if (out >= 0) close(out);
  rename(tmp, to);
}

static void record_entries(const char *dir, const char *shadow) {
  char tmp[4300], to[4200];
  snprintf(to, sizeof to, "%s/.entries", shadow);
  snprintf(tmp, sizeof tmp, "%s.tmp", to);
  FILE *out = fopen(tmp, "w");
  DIR *d = opendir(dir);
  if (out && d) {
    struct dirent *e;
    while ((e = readdir(d))) if (e->d_name[0] != '.') fprintf(out, "%s\n", e->d_name);
  }
  if (d) closedir(d);
  if (out) fclose(out);
  rename(tmp, to);
}

static int synced(const char *call, int fd, int result) {
  const char *shadow = getenv("POWERCUT_SHADOW");
  char path[4096];
  int dir = 0;
  const char *name = result == 0 && shadow ? watched(fd, path, sizeof path, &dir) : NULL;
  if (!name) return result;
  pthread_mutex_lock(&lock);
  if (__atomic_load_n(&cutting, __ATOMIC_SEQ_CST)) {
    note("%s after the cut: not durable\n", call);
  } else if (dir) {
    record_entries(path, shadow);
    note("%s dir\n", call);
  } else {
    char to[4200];
    snprintf(to, sizeof to, "%s/%s", shadow, name);
    copy_file(path, to);
    struct stat st;
    note("%s %s %lld\n", call, name, stat(path, &st) == 0 ? (long long)st.st_size : -1LL);
  }
  pthread_mutex_unlock(&lock);
  return result;
}

static int dropped(const char *call, int fd) {
  if (!getenv("POWERCUT_DROP_READONLY_SYNC") || (fcntl(fd, F_GETFL) & O_ACCMODE) != O_RDONLY) return 0;
  char path[4096];
  int dir = 0;
  if (!watched(fd, path, sizeof path, &dir) || dir) return 0;
  note("%s dropped %s\n", call, path);
  return 1;
}

int fsync(int fd) {
  static int (*real)(int);
  if (!real) real = dlsym(RTLD_NEXT, "fsync");
  if (dropped("fsync", fd)) return 0;
  return synced("fsync", fd, real(fd));
}

int fdatasync(int fd) {
  static int (*real)(int);
  if (!real) real = dlsym(RTLD_NEXT, "fdatasync");
  if (dropped("fdatasync", fd)) return 0;
  return synced("fdatasync", fd, real(fd));
}

/* After a "250 ... queued as N" has gone to the client: note it, and maybe cut the power now. */
static void replied(const void *buf, size_t len) {
  if (len < 4 || memcmp(buf, "250 ", 4) != 0 || !memmem(buf, len, "queued as ", 10)) return;
  const char *cut = getenv("POWERCUT_CUT_AFTER_250");
  int k = __atomic_add_fetch(&replies_250, 1, __ATOMIC_SEQ_CST);
  note("replied %.*s", (int)(len > 200 ? 200 : len), (const char *)buf);
  if (cut && k == atoi(cut)) {
    __atomic_store_n(&cutting, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_lock(&lock); /* a copy under way finishes: its sync returned before the 250 */
    note("cut\n");
    kill(getpid(), SIGKILL);
  }
}

ssize_t write(int fd, const void *buf, size_t count) {
  static ssize_t (*real)(int, const void *, size_t);
  if (!real) real = dlsym(RTLD_NEXT, "write");
  ssize_t n = real(fd, buf, count);
  if (n > 0) replied(buf, (size_t)n);
  return n;
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt) {
  static ssize_t (*real)(int, const struct iovec *, int);
  if (!real) real = dlsym(RTLD_NEXT, "writev");
  ssize_t n = real(fd, iov, iovcnt);
  if (n > 0) for (int i = 0; i < iovcnt; i++) replied(iov[i].iov_base, iov[i].iov_len);
  return n;
}
