/*
 * nsm-agent native helper: sets SO_RCVBUF/SO_SNDBUF on another process's UDP sockets.
 *
 * Debian's wireguard-go (0.0.20220316) never sizes its UDP sockets, so they get the system default
 * (208 KiB) and drop datagrams under load. The agent gives them bigger buffers from outside: it
 * duplicates each UDP socket of the process with pidfd_getfd(2) (Linux >= 5.6; the caller needs
 * ptrace access to the process, i.e. CAP_SYS_PTRACE, and Yama ptrace_scope < 3) and sets
 * SO_RCVBUFFORCE/SO_SNDBUFFORCE (CAP_NET_ADMIN) on the duplicate, which changes the one socket both
 * descriptors refer to. Nothing else in the target is touched.
 *
 * JS: udpBuffers(pid: number, bytes: number) -> Array<{fd, family, rcvbuf, sndbuf, changed}>
 *   bytes 0 only reads. A socket is changed only when its SO_RCVBUF or SO_SNDBUF is below what
 *   `bytes` gives (the kernel doubles the value set), so calling it again changes nothing.
 *   Errors are thrown with `code` set to the errno name (EPERM, ENOSYS, ESRCH …) and `syscall`.
 *
 * It also carries the agent's other needs for system calls Node does not offer: sending a
 * datagram on an AF_UNIX socket, which is how a service tells systemd it is ready (sd_notify(3)),
 * in icmp-liveness.c, the raw ICMP sockets of the data-plane liveness pings, and in process-memory.c,
 * malloc_trim and dropping the single binary's SEA blob pages. All live in one
 * addon so the single binary embeds one asset (addon.h lists the files).
 *
 * JS: notify(path: string, message: string) -> number of bytes sent
 *   `path` is NOTIFY_SOCKET: a filesystem path ("/run/systemd/notify") or an abstract name written
 *   with a leading "@" (sent with a leading NUL, like sd_notify). One SOCK_DGRAM|SOCK_CLOEXEC socket
 *   per call, closed before returning. Errors as above (ENOENT, ECONNREFUSED, ENAMETOOLONG …).
 *
 * Built with only the Node-API C headers (ABI-stable, NAPI_VERSION 8), so one build serves every
 * Node >= 16 runtime: the development Node and the one inside the single binary.
 */
#define _GNU_SOURCE
#include "addon.h"

#include <dirent.h>
#include <stddef.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif
#ifndef SO_RCVBUFFORCE
#define SO_RCVBUFFORCE 33
#endif
#ifndef SO_SNDBUFFORCE
#define SO_SNDBUFFORCE 32
#endif

#define MAX_SOCKETS 64

struct found {
  int fd;
  int family;
  int rcvbuf;
  int sndbuf;
  int changed;
};

static const char *errno_name(int e) {
  switch (e) {
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case ESRCH: return "ESRCH";
    case ENOSYS: return "ENOSYS";
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    case EMFILE: return "EMFILE";
    case ENOENT: return "ENOENT";
    case ENOMEM: return "ENOMEM";
    case ECONNREFUSED: return "ECONNREFUSED";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ENOTSOCK: return "ENOTSOCK";
    case ENOTDIR: return "ENOTDIR";
    case EAGAIN: return "EAGAIN";
    case EMSGSIZE: return "EMSGSIZE";
    case ENOBUFS: return "ENOBUFS";
    case EPROTOTYPE: return "EPROTOTYPE";
    case ENODEV: return "ENODEV";
    case ENXIO: return "ENXIO";
    case ENETDOWN: return "ENETDOWN";
    case ENETUNREACH: return "ENETUNREACH";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case ENFILE: return "ENFILE";
    case EINTR: return "EINTR";
    case EMLINK: return "EMLINK";
    default: return "EUNKNOWN";
  }
}

napi_value nsm_throw_errno(napi_env env, const char *call, int e) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s", call, strerror(e));
  napi_value code, message, error, syscall_name;
  napi_create_string_utf8(env, errno_name(e), NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &error);
  napi_create_string_utf8(env, call, NAPI_AUTO_LENGTH, &syscall_name);
  napi_set_named_property(env, error, "syscall", syscall_name);
  napi_throw(env, error);
  return NULL;
}

static int get_int(int fd, int level, int name, int *out) {
  socklen_t len = sizeof *out;
  return getsockopt(fd, level, name, out, &len);
}

/* Fills `out` with the target's UDP sockets; returns their number or -errno. */
static int visit(int pidfd, int pid, int bytes, struct found *out, const char **failed_call) {
  char dir[64];
  snprintf(dir, sizeof dir, "/proc/%d/fd", pid);
  DIR *d = opendir(dir);
  if (d == NULL) {
    *failed_call = "opendir /proc/<pid>/fd";
    return -errno;
  }
  int n = 0;
  int err = 0;
  struct dirent *ent;
  while (n < MAX_SOCKETS && (ent = readdir(d)) != NULL) {
    if (ent->d_name[0] < '0' || ent->d_name[0] > '9') continue;
    int target = atoi(ent->d_name);
    char link[64], path[320];
    snprintf(path, sizeof path, "%s/%s", dir, ent->d_name);
    ssize_t l = readlink(path, link, sizeof link - 1);
    if (l < 0) continue; /* closed meanwhile */
    link[l] = 0;
    if (strncmp(link, "socket:", 7) != 0) continue;
    int fd = (int)syscall(SYS_pidfd_getfd, pidfd, target, 0);
    if (fd < 0) {
      if (errno == EBADF) continue; /* closed meanwhile */
      err = -errno;
      *failed_call = "pidfd_getfd";
      break;
    }
    int type = 0, family = 0;
    if (get_int(fd, SOL_SOCKET, SO_TYPE, &type) == 0 && type == SOCK_DGRAM &&
        get_int(fd, SOL_SOCKET, SO_DOMAIN, &family) == 0 &&
        (family == AF_INET || family == AF_INET6)) {
      struct found f = {target, family, 0, 0, 0};
      get_int(fd, SOL_SOCKET, SO_RCVBUF, &f.rcvbuf);
      get_int(fd, SOL_SOCKET, SO_SNDBUF, &f.sndbuf);
      /* The kernel stores (and reports) twice the value set. */
      long want = 2L * (long)bytes;
      if (bytes > 0 && (f.rcvbuf < want || f.sndbuf < want)) {
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) != 0 ||
            setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof bytes) != 0) {
          err = -errno;
          *failed_call = "setsockopt SO_RCVBUFFORCE";
          close(fd);
          break;
        }
        get_int(fd, SOL_SOCKET, SO_RCVBUF, &f.rcvbuf);
        get_int(fd, SOL_SOCKET, SO_SNDBUF, &f.sndbuf);
        f.changed = 1;
      }
      out[n++] = f;
    }
    close(fd);
  }
  closedir(d);
  return err != 0 ? err : n;
}

void nsm_set_number(napi_env env, napi_value obj, const char *key, double v) {
  napi_value x;
  napi_create_double(env, v, &x);
  napi_set_named_property(env, obj, key, x);
}

static napi_value udp_buffers(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t pid = 0, bytes = 0;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &pid) != napi_ok ||
      napi_get_value_int32(env, argv[1], &bytes) != napi_ok || pid <= 0 || bytes < 0) {
    napi_throw_type_error(env, "EINVAL", "udpBuffers(pid > 0, bytes >= 0)");
    return NULL;
  }
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (pidfd < 0) return nsm_throw_errno(env, "pidfd_open", errno);
  struct found found[MAX_SOCKETS];
  const char *failed_call = "";
  int n = visit(pidfd, pid, bytes, found, &failed_call);
  close(pidfd);
  if (n < 0) return nsm_throw_errno(env, failed_call, -n);
  napi_value list;
  napi_create_array_with_length(env, (size_t)n, &list);
  for (int i = 0; i < n; i++) {
    napi_value o;
    napi_create_object(env, &o);
    nsm_set_number(env, o, "fd", found[i].fd);
    nsm_set_number(env, o, "family", found[i].family == AF_INET6 ? 6 : 4);
    nsm_set_number(env, o, "rcvbuf", found[i].rcvbuf);
    nsm_set_number(env, o, "sndbuf", found[i].sndbuf);
    napi_value changed;
    napi_get_boolean(env, found[i].changed != 0, &changed);
    napi_set_named_property(env, o, "changed", changed);
    napi_set_element(env, list, (uint32_t)i, o);
  }
  return list;
}

static napi_value notify(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  size_t path_len = 0, msg_len = 0;
  if (argc < 2 || napi_get_value_string_utf8(env, argv[0], NULL, 0, &path_len) != napi_ok ||
      napi_get_value_string_utf8(env, argv[1], NULL, 0, &msg_len) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "notify(path: string, message: string)");
    return NULL;
  }
  /* A filesystem path needs room for its NUL; an abstract name's "@" becomes the leading NUL. */
  if (path_len >= sizeof sa.sun_path) return nsm_throw_errno(env, "sendto NOTIFY_SOCKET", ENAMETOOLONG);
  char path[sizeof sa.sun_path];
  napi_get_value_string_utf8(env, argv[0], path, sizeof path, &path_len);
  if (path_len < 2 || (path[0] != '/' && path[0] != '@') || strlen(path) != path_len) {
    napi_throw_type_error(env, "EINVAL", "notify: path must be absolute or @abstract");
    return NULL;
  }
  memcpy(sa.sun_path, path, path_len);
  socklen_t addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + path_len);
  if (path[0] == '@') sa.sun_path[0] = 0;
  else addr_len += 1;
  char *msg = malloc(msg_len + 1);
  if (msg == NULL) return nsm_throw_errno(env, "malloc", ENOMEM);
  napi_get_value_string_utf8(env, argv[1], msg, msg_len + 1, &msg_len);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    int e = errno;
    free(msg);
    return nsm_throw_errno(env, "socket AF_UNIX", e);
  }
  ssize_t sent = sendto(fd, msg, msg_len, MSG_NOSIGNAL, (struct sockaddr *)&sa, addr_len);
  int e = errno;
  close(fd);
  free(msg);
  if (sent < 0) return nsm_throw_errno(env, "sendto NOTIFY_SOCKET", e);
  napi_value n;
  napi_create_int64(env, (int64_t)sent, &n);
  return n;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "udpBuffers", NAPI_AUTO_LENGTH, udp_buffers, NULL, &fn);
  napi_set_named_property(env, exports, "udpBuffers", fn);
  napi_create_function(env, "notify", NAPI_AUTO_LENGTH, notify, NULL, &fn);
  napi_set_named_property(env, exports, "notify", fn);
  nsm_register_icmp(env, exports);
  nsm_register_memory(env, exports);
  return exports;
}
