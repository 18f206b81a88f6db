/*
 * nsm-agent native helper: raw ICMP echo for the data-plane liveness check of a connection.
 *
 * NSM's client pings the far end of every connection it holds and reselects when the pings stop
 * (the heal element's liveness check). Node has no raw sockets, and one `ping` process per probe
 * would cost a fork every second per connection, so the agent sends the echoes itself: one raw
 * socket per (network namespace, address family), shared by every connection in that namespace,
 * non-blocking, drained from the event loop's timer. No thread, no process.
 *
 * The daemon's V8 runs without its optimizing compilers, so every JS operation per connection and
 * second counts: one call per socket and tick sends all of that socket's echoes (sendmmsg) from a
 * packed table the JS side keeps, and one call drains all replies (recvmmsg) into a packed buffer.
 * No JS string or object per echo or reply; only a failed send makes an object.
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
 * JS: icmpSend(fd, table: TypedArray, count: number, seq: number) -> null | Array<{index, errno, message}>
 *   One echo request per record of `table` (records 0 .. count-1, ECHO_RECORD_BYTES each):
 *     bytes  0..15  interface name, NUL-padded (at most 15 characters)
 *     bytes 16..31  source address (IPv4: the first 4 bytes), network order
 *     bytes 32..47  destination address, likewise
 *     bytes 48..49  echo id, big-endian; 50..51 unused
 *   all with the same `seq` (16 bits) and an 8-byte payload marker, from the source out of the
 *   interface, both given per packet with IP_PKTINFO / IPV6_PKTINFO. The interface index is looked
 *   up with SIOCGIFINDEX on the socket itself (i.e. in its namespace) once per distinct name and
 *   call, so a recreated interface is found by its new index at the next call. IPv4 checksums are
 *   computed here; the kernel fills the ICMPv6 one. A link-local IPv6 destination gets the interface
 *   as its scope. Returns null when every echo went out, else one {index, errno, message} per record
 *   that failed, message as "syscall: strerror" (ioctl SIOCGIFINDEX: ENODEV when the interface is
 *   gone; sendmsg: ENETUNREACH, EADDRNOTAVAIL when the source is not local, EAGAIN ...).
 * JS: icmpReceive(fd, out: TypedArray) -> number
 *   Drains the queued echo replies that carry the marker (replies to other ping programs in the
 *   namespace are dropped here) into `out`, REPLY_RECORD_BYTES each, and returns how many it wrote;
 *   stops when the queue is empty, `out` is full (the caller calls again) or MAX_READS datagrams
 *   were read; never blocks. A record, as 32-bit words in host byte order:
 *     word 0      id | seq << 16
 *     words 1..4  the source address's 16 bytes as they came (IPv4: word 1, words 2..4 zero)
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
#include <stdbool.h>
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

/* icmpSend's table records (the JS side: src/host/liveness/echo-records.ts). */
#define ECHO_RECORD_BYTES 52
#define REC_IFNAME 0
#define REC_SRC 16
#define REC_DST 32
#define REC_ID 48
/* icmpReceive's records. */
#define REPLY_RECORD_BYTES 20

#define SEND_BATCH 64
#define RECV_BATCH 64
/* Enough for a 60-byte IPv4 header and the echo header with the marker. */
#define RECV_BYTES 96
/* Datagrams one icmpReceive reads at most, kept or not (a flood of other pings cannot hold the loop). */
#define MAX_READS 4096
#define IFCACHE_SIZE 8

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

static int get_u32(napi_env env, napi_value v, uint32_t max, uint32_t *out) {
  int64_t x = -1;
  if (napi_get_value_int64(env, v, &x) != napi_ok || x < 0 || x > (int64_t)max) return -1;
  *out = (uint32_t)x;
  return 0;
}

/* The bytes of a typed array (a Buffer is one). */
static int get_bytes(napi_env env, napi_value v, uint8_t **data, size_t *bytes) {
  bool is = false;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return -1;
  napi_typedarray_type type;
  size_t length = 0;
  void *p = NULL;
  if (napi_get_typedarray_info(env, v, &type, &length, &p, NULL, NULL) != napi_ok) return -1;
  size_t size = 1;
  switch (type) {
    case napi_int16_array:
    case napi_uint16_array:
      size = 2;
      break;
    case napi_int32_array:
    case napi_uint32_array:
    case napi_float32_array:
      size = 4;
      break;
    case napi_float64_array:
    case napi_bigint64_array:
    case napi_biguint64_array:
      size = 8;
      break;
    default:
      size = 1;
  }
  *data = p;
  *bytes = length * size;
  return 0;
}

static uint16_t checksum(const uint8_t *p, size_t n) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < n; i += 2) sum += (uint32_t)(p[i] << 8 | p[i + 1]);
  if (n & 1) sum += (uint32_t)(p[n - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

/* Interface names already looked up in this call: with host connects every record names one device. */
struct ifcache {
  int n;
  int next; /* the entry a new name replaces once all are taken */
  struct {
    char name[IFNAMSIZ];
    int index; /* > 0, or -errno */
  } e[IFCACHE_SIZE];
};

static int lookup_ifindex(int fd, struct ifcache *cache, const char name[IFNAMSIZ]) {
  for (int i = 0; i < cache->n; i++)
    if (memcmp(cache->e[i].name, name, IFNAMSIZ) == 0) return cache->e[i].index;
  int index;
  if (memchr(name, 0, IFNAMSIZ) == NULL || name[0] == 0) {
    index = -ENODEV; /* a name too long for the kernel cannot name an interface */
  } else {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, name, IFNAMSIZ);
    index = ioctl(fd, SIOCGIFINDEX, &ifr) == 0 ? ifr.ifr_ifindex : -errno;
  }
  /* Full: the entries are reused in turn (a call naming many interfaces looks most of them up). */
  int slot = cache->n < IFCACHE_SIZE ? cache->n++ : cache->next++ % IFCACHE_SIZE;
  memcpy(cache->e[slot].name, name, IFNAMSIZ);
  cache->e[slot].index = index;
  return index;
}

/* One message of a sendmmsg batch, with everything its msghdr points to. */
struct echo_msg {
  uint8_t pkt[PACKET_LEN];
  struct sockaddr_in6 to; /* or a sockaddr_in in its first bytes */
  struct iovec iov;
  union {
    char buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
    struct cmsghdr align;
  } control;
};

/* Appends {index, errno, message} to *list (made on the first failure). */
static void add_failure(napi_env env, napi_value *list, uint32_t *n, uint32_t index, const char *call, int e) {
  if (*list == NULL) napi_create_array(env, list);
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s", call, strerror(e));
  napi_value o, s;
  napi_create_object(env, &o);
  nsm_set_number(env, o, "index", index);
  nsm_set_number(env, o, "errno", e);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &s);
  napi_set_named_property(env, o, "message", s);
  napi_set_element(env, *list, (*n)++, o);
}

/* Fills m and hdr for one echo of `rec` (an ECHO_RECORD_BYTES record) out of `ifindex`. */
static void build_echo(int family, const uint8_t *rec, int ifindex, uint16_t seq, struct echo_msg *m,
                       struct msghdr *hdr) {
  memset(m, 0, sizeof *m);
  memset(hdr, 0, sizeof *hdr);
  uint8_t *pkt = m->pkt;
  pkt[0] = family == AF_INET ? ICMP_ECHO_REQUEST : ICMP6_ECHO_REQUEST;
  pkt[4] = rec[REC_ID];
  pkt[5] = rec[REC_ID + 1];
  pkt[6] = (uint8_t)(seq >> 8);
  pkt[7] = (uint8_t)seq;
  memcpy(pkt + 8, MARKER, MARKER_LEN);
  m->iov.iov_base = pkt;
  m->iov.iov_len = PACKET_LEN;
  hdr->msg_name = &m->to;
  hdr->msg_iov = &m->iov;
  hdr->msg_iovlen = 1;
  hdr->msg_control = m->control.buf;
  struct cmsghdr *c = (struct cmsghdr *)m->control.buf;
  if (family == AF_INET) {
    struct sockaddr_in *sin = (struct sockaddr_in *)&m->to;
    struct in_pktinfo pi;
    memset(&pi, 0, sizeof pi);
    sin->sin_family = AF_INET;
    memcpy(&sin->sin_addr, rec + REC_DST, 4);
    memcpy(&pi.ipi_spec_dst, rec + REC_SRC, 4);
    pi.ipi_ifindex = ifindex;
    uint16_t sum = checksum(pkt, PACKET_LEN);
    pkt[2] = (uint8_t)(sum >> 8);
    pkt[3] = (uint8_t)sum;
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof pi);
    memcpy(CMSG_DATA(c), &pi, sizeof pi);
    hdr->msg_controllen = CMSG_SPACE(sizeof pi);
    hdr->msg_namelen = sizeof *sin;
  } else {
    struct sockaddr_in6 *sin6 = &m->to;
    struct in6_pktinfo pi;
    memset(&pi, 0, sizeof pi);
    sin6->sin6_family = AF_INET6;
    memcpy(&sin6->sin6_addr, rec + REC_DST, 16);
    memcpy(&pi.ipi6_addr, rec + REC_SRC, 16);
    if (IN6_IS_ADDR_LINKLOCAL(&sin6->sin6_addr) || IN6_IS_ADDR_MC_LINKLOCAL(&sin6->sin6_addr))
      sin6->sin6_scope_id = (uint32_t)ifindex;
    pi.ipi6_ifindex = (unsigned)ifindex;
    c->cmsg_level = IPPROTO_IPV6;
    c->cmsg_type = IPV6_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof pi);
    memcpy(CMSG_DATA(c), &pi, sizeof pi);
    hdr->msg_controllen = CMSG_SPACE(sizeof pi);
    hdr->msg_namelen = sizeof *sin6;
  }
}

/* Sends msgs[0..k) (sendmmsg); a message the kernel refuses becomes a failure of its record. */
static void send_batch(napi_env env, int fd, struct mmsghdr *msgs, const uint32_t *index, int k,
                       napi_value *failures, uint32_t *nfail) {
  int off = 0;
  while (off < k) {
    int sent = sendmmsg(fd, msgs + off, (unsigned)(k - off), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent <= 0) {
      /* The first message failed (a later failure only ends the batch early: it is retried first
       * by the next call, which then reports its errno). */
      add_failure(env, failures, nfail, index[off], "sendmsg", sent < 0 ? errno : EAGAIN);
      off++;
      continue;
    }
    off += sent;
  }
}

static napi_value icmp_send(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int fd = -1;
  uint8_t *table = NULL;
  size_t bytes = 0;
  uint32_t count = 0, seq = 0;
  if (argc < 4 || get_fd(env, argv[0], &fd) != 0 || get_bytes(env, argv[1], &table, &bytes) != 0 ||
      get_u32(env, argv[2], UINT32_MAX, &count) != 0 || get_u32(env, argv[3], 0xffff, &seq) != 0 ||
      (uint64_t)count * ECHO_RECORD_BYTES > bytes)
    return throw_type(env, "icmpSend(fd, table: TypedArray, count: records in table, seq: 0..65535)");
  int family = 0;
  socklen_t flen = sizeof family;
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &flen) != 0)
    return nsm_throw_errno(env, "getsockopt SO_DOMAIN", errno);
  if (family != AF_INET && family != AF_INET6) return nsm_throw_errno(env, "icmpSend: not an ICMP socket", EBADF);

  struct ifcache cache;
  cache.n = 0;
  cache.next = 0;
  struct echo_msg m[SEND_BATCH];
  struct mmsghdr msgs[SEND_BATCH];
  uint32_t index[SEND_BATCH];
  napi_value failures = NULL;
  uint32_t nfail = 0;
  int k = 0;
  for (uint32_t i = 0; i < count; i++) {
    const uint8_t *rec = table + (size_t)i * ECHO_RECORD_BYTES;
    int ifindex = lookup_ifindex(fd, &cache, (const char *)rec + REC_IFNAME);
    if (ifindex < 0) {
      add_failure(env, &failures, &nfail, i, "ioctl SIOCGIFINDEX", -ifindex);
      continue;
    }
    build_echo(family, rec, ifindex, (uint16_t)seq, &m[k], &msgs[k].msg_hdr);
    msgs[k].msg_len = 0;
    index[k++] = i;
    if (k == SEND_BATCH) {
      send_batch(env, fd, msgs, index, k, &failures, &nfail);
      k = 0;
    }
  }
  if (k > 0) send_batch(env, fd, msgs, index, k, &failures, &nfail);
  if (failures != NULL) return failures;
  napi_value null;
  napi_get_null(env, &null);
  return null;
}

static napi_value icmp_receive(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int fd = -1;
  uint8_t *out = NULL;
  size_t bytes = 0;
  if (argc < 2 || get_fd(env, argv[0], &fd) != 0 || get_bytes(env, argv[1], &out, &bytes) != 0)
    return throw_type(env, "icmpReceive(fd, out: TypedArray)");
  size_t cap = bytes / REPLY_RECORD_BYTES;
  size_t written = 0;
  /* An echo reply is small; a bigger datagram is truncated (MSG_TRUNC) and still parsed. */
  uint8_t buf[RECV_BATCH][RECV_BYTES];
  struct sockaddr_in6 from[RECV_BATCH];
  struct iovec iov[RECV_BATCH];
  struct mmsghdr msgs[RECV_BATCH];
  int reads = 0;
  while (written < cap && reads < MAX_READS) {
    unsigned vlen = RECV_BATCH;
    if (cap - written < vlen) vlen = (unsigned)(cap - written);
    for (unsigned j = 0; j < vlen; j++) {
      iov[j].iov_base = buf[j];
      iov[j].iov_len = RECV_BYTES;
      memset(&msgs[j].msg_hdr, 0, sizeof msgs[j].msg_hdr);
      msgs[j].msg_hdr.msg_name = &from[j];
      msgs[j].msg_hdr.msg_namelen = sizeof from[j];
      msgs[j].msg_hdr.msg_iov = &iov[j];
      msgs[j].msg_hdr.msg_iovlen = 1;
    }
    int got = recvmmsg(fd, msgs, vlen, MSG_DONTWAIT, NULL);
    if (got < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      return nsm_throw_errno(env, "recvmmsg", errno);
    }
    reads += got;
    for (int j = 0; j < got; j++) {
      const uint8_t *icmp = buf[j];
      size_t len = msgs[j].msg_len < RECV_BYTES ? msgs[j].msg_len : RECV_BYTES;
      uint8_t want = ICMP6_ECHO_REPLY;
      int v4 = from[j].sin6_family == AF_INET;
      if (v4) {
        /* An IPv4 raw socket sees the IP header; ICMPv6 ones do not. */
        if (len < 20) continue;
        size_t ihl = (size_t)(icmp[0] & 0x0f) * 4;
        if (ihl < 20 || len < ihl) continue;
        icmp += ihl;
        len -= ihl;
        want = ICMP_ECHO_REPLY;
      } else if (from[j].sin6_family != AF_INET6) {
        continue;
      }
      if (len < PACKET_LEN || icmp[0] != want || icmp[1] != 0 || memcmp(icmp + 8, MARKER, MARKER_LEN) != 0)
        continue;
      uint8_t *rec = out + written * REPLY_RECORD_BYTES;
      uint32_t head = (uint32_t)(icmp[4] << 8 | icmp[5]) | (uint32_t)(icmp[6] << 8 | icmp[7]) << 16;
      memcpy(rec, &head, 4);
      memset(rec + 4, 0, 16);
      if (v4)
        memcpy(rec + 4, &((struct sockaddr_in *)&from[j])->sin_addr, 4);
      else
        memcpy(rec + 4, &from[j].sin6_addr, 16);
      written++;
    }
    if ((unsigned)got < vlen) break; /* the queue is empty */
  }
  napi_value n;
  napi_create_uint32(env, (uint32_t)written, &n);
  return n;
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
