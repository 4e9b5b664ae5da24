/*
 * families ALLOWED COMMAND...: runs COMMAND where socket(2) refuses every address family but the
 * comma-separated numbers in ALLOWED with EAFNOSUPPORT, as systemd's RestrictAddressFamilies=
 * does (a seccomp filter, inherited by every thread and child).
 */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: families 1,2,10 command...\n");
    return 2;
  }
  unsigned allowed[32];
  int n = 0;
  for (char *s = strtok(argv[1], ","); s && n < 32; s = strtok(NULL, ",")) allowed[n++] = (unsigned)atoi(s);
  struct sock_filter f[40];
  int i = 0;
  f[i++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
  f[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_socket, 1, 0);
  f[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  f[i++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0]));
  /* Each allowed family jumps over what is left of the list and the refusal to the final allow. */
  for (int k = 0; k < n; k++) f[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, allowed[k], (unsigned char)(n - k), 0);
  f[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EAFNOSUPPORT & SECCOMP_RET_DATA));
  f[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  struct sock_fprog prog = {.len = (unsigned short)i, .filter = f};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)) {
    perror("families: seccomp");
    return 2;
  }
  execvp(argv[2], argv + 2);
  perror("families: exec");
  return 2;
}
