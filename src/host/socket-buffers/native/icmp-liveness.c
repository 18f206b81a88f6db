/*
 * nsm-agent native helper: raw ICMP echo for the data-plane liveness check of a connection.
 *
 * NSM's client pings the far end of every connection it holds and reselects when the pings stop
 * (the heal element's liveness check). Node has no raw sockets, and one `ping` process per probe
 * would cost a fork every second per connection, so the agent sends the echoes itself: one raw
 * socket per (network namespace, address family), shared by every connection in that namespace,
 * non-blocking, drained from the event loop's timer. No thread, no process.
 *
 * A socket belongs to the namespace it was created in, so icmpOpen enters the target namespace
 * (setns(CLONE_NEWNET) on the calling thread, i.e. Node's main thread), creates the socket and
 * returns to the thread's own namespace before anything else runs. If going back fails the process
 * aborts: every socket the agent opened afterwards would silently live in the wrong namespace.
 * Needs CAP_NET_RAW (the socket) and CAP_SYS_ADMIN (setns); the agent runs as root.
 *
 * JS: icmpOpen(netnsPath: string | null, family: 4 | 6) -> fd
 *   netnsPath: a namespace file (/var/run/netns/NAME, /proc/PID/ns/net), null = the caller's own.
 *   A SOCK_RAW|SOCK_NONBLOCK|SOCK_CLOEXEC socket (IPPROTO_ICMP or IPPROTO_ICMPV6) with an ICMP_FILTER
 *   / ICMP6_FILTER that queues only echo replies, and 2 MiB buffers (SO_RCVBUFFORCE, falling back to
 *   what rmem_max allows) so one tick's replies of a thousand connections fit.
 * JS: icmpSend(fd, ifName: string, src: string, dst: string, id: number, seq: number) -> void
 *   One echo request with `id`/`seq` (16 bits each) and an 8-byte payload marker, from `src` out of
 *   `ifName`, both given per packet with IP_PKTINFO / IPV6_PKTINFO (the interface index is looked up
 *   with SIOCGIFINDEX on the socket itself, i.e. in the socket's namespace). IPv4 checksum computed
 *   here; the kernel fills the ICMPv6 one. A link-local IPv6 `dst` gets the interface as its scope.
 *   Errors: ENODEV (no such interface), ENETUNREACH, EADDRNOTAVAIL (src not local), EAGAIN …
 * JS: icmpReceive(fd) -> Array<{ from: string, id: number, seq: number }>
 *   Drains the echo replies queued on the socket (at most 4096 per call; never blocks) that carry the
 *   marker, so replies to other ping programs in the namespace are dropped here.
 * JS: icmpClose(fd) -> void
 * Errors are thrown with `code` set to the errno name and `syscall`, like udpBuffers and notify.
 */
#define _GNU_SOURCE
#include "addon.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* From <linux/icmp.h>, which clashes with the netinet headers. */
#ifndef ICMP_FILTER
#define ICMP_FILTER 1
#endif
#ifndef SOL_RAW
#define SOL_RAW 255
#endif
#ifndef SO_RCVBUFFORCE
#define SO_RCVBUFFORCE 33
#endif
#ifndef SO_SNDBUFFORCE
#define SO_SNDBUFFORCE 32
#endif

#define ICMP_ECHO_REQUEST 8
#define ICMP_ECHO_REPLY 0
#define MARKER "nsm-live"
#define MARKER_LEN 8
#define PACKET_LEN (8 + MARKER_LEN)
#define BUFFER_BYTES (2 * 1024 * 1024)
#define MAX_REPLIES 4096

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, "EINVAL", msg);
  return NULL;
}

static int set_filter(int fd, int family) {
  if (family == AF_INET) {
    uint32_t blocked = ~(1U << ICMP_ECHO_REPLY); /* a set bit drops that type */
    return setsockopt(fd, SOL_RAW, ICMP_FILTER, &blocked, sizeof blocked);
  }
  struct icmp6_filter f;
  ICMP6_FILTER_SETBLOCKALL(&f);
  ICMP6_FILTER_SETPASS(ICMP6_ECHO_REPLY, &f);
  return setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, &f, sizeof f);
}

static void size_buffers(int fd) {
  int bytes = BUFFER_BYTES;
  /* Without CAP_NET_ADMIN the FORCE variants fail; the plain ones are capped at [rw]mem_max. */
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) != 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof bytes) != 0)
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
}

/* Creates the socket in the current namespace; returns the fd or -errno (`*call` says which step). */
static int open_here(int family, const char **call) {
  int fd = socket(family, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC,
                  family == AF_INET ? IPPROTO_ICMP : IPPROTO_ICMPV6);
  if (fd < 0) {
    *call = family == AF_INET ? "socket SOCK_RAW IPPROTO_ICMP" : "socket SOCK_RAW IPPROTO_ICMPV6";
    return -errno;
  }
  if (set_filter(fd, family) != 0) {
    int e = errno;
    close(fd);
    *call = family == AF_INET ? "setsockopt ICMP_FILTER" : "setsockopt ICMP6_FILTER";
    return -e;
  }
  size_buffers(fd);
  return fd;
}

/* Like open_here, inside the namespace of `path`, and back in this thread's own before returning. */
static int open_in(const char *path, int family, const char **call) {
  int target = open(path, O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    *call = "open netns";
    return -errno;
  }
  int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0) {
    int e = errno;
    close(target);
    *call = "open /proc/thread-self/ns/net";
    return -e;
  }
  if (setns(target, CLONE_NEWNET) != 0) {
    int e = errno; /* EINVAL: the file is not a network namespace */
    close(self);
    close(target);
    *call = "setns";
    return -e;
  }
  int fd = open_here(family, call);
  if (setns(self, CLONE_NEWNET) != 0) {
    fprintf(stderr, "nsm-agent: cannot return to the agent's network namespace after opening an ICMP socket in %s: %s\n",
            path, strerror(errno));
    abort();
  }
  close(self);
  close(target);
  return fd;
}

static int get_family(napi_env env, napi_value v, int *family) {
  int32_t f = 0;
  if (napi_get_value_int32(env, v, &f) != napi_ok || (f != 4 && f != 6)) return -1;
  *family = f == 4 ? AF_INET : AF_INET6;
  return 0;
}

static napi_value icmp_open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int family = 0;
  napi_valuetype t = napi_undefined;
  if (argc < 2 || get_family(env, argv[1], &family) != 0 || napi_typeof(env, argv[0], &t) != napi_ok ||
      (t != napi_string && t != napi_null && t != napi_undefined))
    return throw_type(env, "icmpOpen(netnsPath: string | null, family: 4 | 6)");
  const char *call = "";
  int fd;
  if (t != napi_string) {
    fd = open_here(family, &call);
  } else {
    char path[4096];
    size_t len = 0;
    napi_get_value_string_utf8(env, argv[0], path, sizeof path, &len);
    if (len == 0 || len >= sizeof path - 1 || strlen(path) != len)
      return throw_type(env, "icmpOpen: netnsPath must be a non-empty path");
    fd = open_in(path, family, &call);
  }
  if (fd < 0) return nsm_throw_errno(env, call, -fd);
  napi_value out;
  napi_create_int32(env, fd, &out);
  return out;
}

static int get_fd(napi_env env, napi_value v, int *fd) {
  int32_t x = -1;
  if (napi_get_value_int32(env, v, &x) != napi_ok || x < 0) return -1;
  *fd = x;
  return 0;
}

static int get_u16(napi_env env, napi_value v, uint16_t *out) {
  int32_t x = -1;
  if (napi_get_value_int32(env, v, &x) != napi_ok || x < 0 || x > 0xffff) return -1;
  *out = (uint16_t)x;
  return 0;
}

/* Copies a JS string into buf (NUL-terminated); -1 when it is not a string or does not fit. */
static int get_str(napi_env env, napi_value v, char *buf, size_t size) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok || len == 0 || len >= size) return -1;
  napi_get_value_string_utf8(env, v, buf, size, &len);
  return strlen(buf) == len ? 0 : -1;
}

static uint16_t checksum(const uint8_t *p, size_t n) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < n; i += 2) sum += (uint32_t)(p[i] << 8 | p[i + 1]);
  if (n & 1) sum += (uint32_t)(p[n - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

static napi_value icmp_send(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int fd = -1;
  uint16_t id = 0, seq = 0;
  char ifname[IFNAMSIZ + 1], src[INET6_ADDRSTRLEN + 1], dst[INET6_ADDRSTRLEN + 1];
  if (argc < 6 || get_fd(env, argv[0], &fd) != 0 || get_u16(env, argv[4], &id) != 0 ||
      get_u16(env, argv[5], &seq) != 0 || get_str(env, argv[2], src, sizeof src) != 0 ||
      get_str(env, argv[3], dst, sizeof dst) != 0)
    return throw_type(env, "icmpSend(fd, ifName, src, dst, id: 0..65535, seq: 0..65535)");
  /* A name too long for the kernel cannot name an interface. */
  if (get_str(env, argv[1], ifname, sizeof ifname) != 0 || strlen(ifname) >= IFNAMSIZ)
    return nsm_throw_errno(env, "ioctl SIOCGIFINDEX", ENODEV);

  int family = 0;
  socklen_t flen = sizeof family;
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &flen) != 0)
    return nsm_throw_errno(env, "getsockopt SO_DOMAIN", errno);

  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, ifname, strlen(ifname));
  if (ioctl(fd, SIOCGIFINDEX, &ifr) != 0) return nsm_throw_errno(env, "ioctl SIOCGIFINDEX", errno);
  int ifindex = ifr.ifr_ifindex;

  uint8_t pkt[PACKET_LEN];
  memset(pkt, 0, sizeof pkt);
  pkt[0] = family == AF_INET ? ICMP_ECHO_REQUEST : ICMP6_ECHO_REQUEST;
  pkt[4] = (uint8_t)(id >> 8);
  pkt[5] = (uint8_t)id;
  pkt[6] = (uint8_t)(seq >> 8);
  pkt[7] = (uint8_t)seq;
  memcpy(pkt + 8, MARKER, MARKER_LEN);

  struct sockaddr_storage to;
  memset(&to, 0, sizeof to);
  socklen_t to_len;
  union {
    char buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
    struct cmsghdr align;
  } control;
  memset(&control, 0, sizeof control);
  struct iovec iov = {pkt, sizeof pkt};
  struct msghdr msg = {0};
  msg.msg_name = &to;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.buf;
  struct cmsghdr *c = (struct cmsghdr *)control.buf;

  if (family == AF_INET) {
    struct sockaddr_in *sin = (struct sockaddr_in *)&to;
    struct in_pktinfo pi;
    memset(&pi, 0, sizeof pi);
    sin->sin_family = AF_INET;
    if (inet_pton(AF_INET, dst, &sin->sin_addr) != 1 || inet_pton(AF_INET, src, &pi.ipi_spec_dst) != 1)
      return throw_type(env, "icmpSend: src and dst must be IPv4 addresses on an IPv4 socket");
    to_len = sizeof *sin;
    uint16_t sum = checksum(pkt, sizeof pkt);
    pkt[2] = (uint8_t)(sum >> 8);
    pkt[3] = (uint8_t)sum;
    pi.ipi_ifindex = ifindex;
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof pi);
    memcpy(CMSG_DATA(c), &pi, sizeof pi);
    msg.msg_controllen = CMSG_SPACE(sizeof pi);
  } else {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&to;
    struct in6_pktinfo pi;
    memset(&pi, 0, sizeof pi);
    sin6->sin6_family = AF_INET6;
    if (inet_pton(AF_INET6, dst, &sin6->sin6_addr) != 1 || inet_pton(AF_INET6, src, &pi.ipi6_addr) != 1)
      return throw_type(env, "icmpSend: src and dst must be IPv6 addresses on an IPv6 socket");
    if (IN6_IS_ADDR_LINKLOCAL(&sin6->sin6_addr) || IN6_IS_ADDR_MC_LINKLOCAL(&sin6->sin6_addr))
      sin6->sin6_scope_id = (uint32_t)ifindex;
    to_len = sizeof *sin6;
    pi.ipi6_ifindex = (unsigned)ifindex;
    c->cmsg_level = IPPROTO_IPV6;
    c->cmsg_type = IPV6_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof pi);
    memcpy(CMSG_DATA(c), &pi, sizeof pi);
    msg.msg_controllen = CMSG_SPACE(sizeof pi);
  }
  msg.msg_namelen = to_len;
  ssize_t sent;
  do sent = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
  while (sent < 0 && errno == EINTR);
  if (sent < 0) return nsm_throw_errno(env, "sendmsg", errno);
  return NULL;
}

static napi_value icmp_receive(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int fd = -1;
  if (argc < 1 || get_fd(env, argv[0], &fd) != 0) return throw_type(env, "icmpReceive(fd)");
  int family = 0;
  socklen_t flen = sizeof family;
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &flen) != 0)
    return nsm_throw_errno(env, "getsockopt SO_DOMAIN", errno);
  napi_value list;
  napi_create_array(env, &list);
  uint32_t n = 0;
  /* An echo reply is small; a bigger datagram is truncated (MSG_TRUNC) and still parsed. */
  uint8_t buf[512];
  for (int i = 0; i < MAX_REPLIES; i++) {
    struct sockaddr_storage from;
    socklen_t from_len = sizeof from;
    ssize_t got = recvfrom(fd, buf, sizeof buf, MSG_DONTWAIT, (struct sockaddr *)&from, &from_len);
    if (got < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      return nsm_throw_errno(env, "recvfrom", errno);
    }
    const uint8_t *icmp = buf;
    size_t len = (size_t)got;
    uint8_t want = ICMP6_ECHO_REPLY;
    if (family == AF_INET) {
      /* An IPv4 raw socket sees the IP header; ICMPv6 ones do not. */
      if (len < 20) continue;
      size_t ihl = (size_t)(buf[0] & 0x0f) * 4;
      if (ihl < 20 || len < ihl) continue;
      icmp += ihl;
      len -= ihl;
      want = ICMP_ECHO_REPLY;
    }
    if (len < PACKET_LEN || icmp[0] != want || icmp[1] != 0 || memcmp(icmp + 8, MARKER, MARKER_LEN) != 0)
      continue;
    char text[INET6_ADDRSTRLEN];
    const void *addr = family == AF_INET ? (const void *)&((struct sockaddr_in *)&from)->sin_addr
                                         : (const void *)&((struct sockaddr_in6 *)&from)->sin6_addr;
    if (inet_ntop(family, addr, text, sizeof text) == NULL) continue;
    napi_value o, s;
    napi_create_object(env, &o);
    napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &s);
    napi_set_named_property(env, o, "from", s);
    nsm_set_number(env, o, "id", (unsigned)(icmp[4] << 8 | icmp[5]));
    nsm_set_number(env, o, "seq", (unsigned)(icmp[6] << 8 | icmp[7]));
    napi_set_element(env, list, n++, o);
  }
  return list;
}

static napi_value icmp_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int fd = -1;
  if (argc < 1 || get_fd(env, argv[0], &fd) != 0) return throw_type(env, "icmpClose(fd)");
  /* Linux releases the descriptor even when close reports an error (EINTR included). */
  if (close(fd) != 0 && errno != EINTR) return nsm_throw_errno(env, "close", errno);
  return NULL;
}

void nsm_register_icmp(napi_env env, napi_value exports) {
  static const struct {
    const char *name;
    napi_callback cb;
  } fns[] = {
    {"icmpOpen", icmp_open},
    {"icmpSend", icmp_send},
    {"icmpReceive", icmp_receive},
    {"icmpClose", icmp_close},
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value fn;
    napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].cb, NULL, &fn);
    napi_set_named_property(env, exports, fns[i].name, fn);
  }
}
