/*
 * nsm-agent native helper: gives memory the idle agent no longer needs back to the OS.
 *
 * After start-up the agent daemon's glibc heap holds freed chunks it never returns by itself
 * (freed memory at the top of the brk heap is only trimmed past M_TRIM_THRESHOLD, and the
 * per-thread arenas are never trimmed), and the single binary's SEA blob (the bundle source, its
 * code cache and this addon, added by postject as an ELF note named NODE_SEA_BLOB) stays mapped
 * and resident although Node read it once at start-up: it copies the source into the V8 heap,
 * consumes the code cache and writes this addon out before loading it. Measured on an idle agent
 * in bench/results/agent-memory-20261201.txt: -3.3 MB anonymous, -2.6 MB file-backed.
 *
 * JS: mallocTrim() -> boolean
 *   glibc malloc_trim(0): returns free memory at the top of every arena and the free pages inside
 *   them (madvise MADV_DONTNEED). true when some memory was released. Without glibc: false.
 * JS: releaseSeaBlob() -> number of bytes advised
 *   Finds the NODE_SEA_BLOB note in the main program's PT_NOTE segments (as postject's own lookup
 *   does, dl_iterate_phdr), checks that the PT_LOAD segment holding it is read-only, and drops the
 *   whole pages inside the note from this process with madvise(MADV_DONTNEED). The mapping is a
 *   private read-only view of the binary's file, so nothing is lost: a later read faults the same
 *   bytes back in from the page cache. 0 when the program carries no blob (not the single binary)
 *   or the blob is not in a read-only segment. Errors are thrown with `code` and `syscall` like
 *   the other functions (madvise: EINVAL, ENOMEM …).
 * JS: releaseProgramPages() -> number of bytes advised
 *   The main program's read-only PT_LOAD segments (for the single binary: Node's and V8's machine
 *   code, .rodata with V8's snapshot, Node's built-in JS and ICU data) are private read-only views
 *   of the binary's file, and start-up (config, module evaluation, TLS set-up) touches ~25 MB of
 *   them that the idle agent never runs again. madvise(MADV_DONTNEED) unmaps their pages from this
 *   process; the pages stay in the page cache, now unmapped and clean, which the kernel reclaims
 *   first when memory is short (mapped executable pages it keeps on the active list instead); what
 *   the agent runs again faults straight back from the page cache (a minor fault) or, once
 *   reclaimed, from the file. Segments with PF_W (data, RELRO) are never touched, and a mapping
 *   inside those segments that holds any anonymous (copy-on-write) page, e.g. a debugger's
 *   breakpoint, is skipped, so nothing but file contents is ever dropped. 0 when nothing qualifies.
 */
#define _GNU_SOURCE
#include "addon.h"

#include <elf.h>
#include <errno.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

static const char sea_note_name[] = "NODE_SEA_BLOB";

static napi_value malloc_trim_js(napi_env env, napi_callback_info info) {
  (void)info;
  int released = 0;
#ifdef __GLIBC__
  released = malloc_trim(0);
#endif
  napi_value r;
  napi_get_boolean(env, released != 0, &r);
  return r;
}

struct blob {
  uintptr_t start, end; /* the note's descriptor (the blob), in memory */
  int read_only;        /* the PT_LOAD segment holding it has no PF_W */
};

/* Notes are 4-byte aligned in ELF64 files as postject writes them (and as its lookup reads them). */
static size_t align4(size_t n) { return (n + 3) & ~(size_t)3; }

static int find_blob(struct dl_phdr_info *info, size_t size, void *opaque) {
  (void)size;
  struct blob *b = opaque;
  for (int i = 0; i < info->dlpi_phnum && b->start == 0; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_NOTE) continue;
    const char *pos = (const char *)(info->dlpi_addr + ph->p_vaddr);
    const char *end = pos + ph->p_memsz;
    while ((size_t)(end - pos) >= sizeof(ElfW(Nhdr))) {
      const ElfW(Nhdr) *n = (const ElfW(Nhdr) *)pos;
      const char *name = pos + sizeof *n;
      const char *desc = name + align4(n->n_namesz);
      if (desc > end || (size_t)(end - desc) < n->n_descsz) break;
      if (n->n_namesz == sizeof sea_note_name && memcmp(name, sea_note_name, sizeof sea_note_name) == 0) {
        b->start = (uintptr_t)desc;
        b->end = (uintptr_t)desc + n->n_descsz;
        break;
      }
      pos = desc + align4(n->n_descsz);
    }
  }
  if (b->start != 0) {
    for (int i = 0; i < info->dlpi_phnum; i++) {
      const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
      uintptr_t s = info->dlpi_addr + ph->p_vaddr;
      if (ph->p_type == PT_LOAD && b->start >= s && b->end <= s + ph->p_memsz)
        b->read_only = (ph->p_flags & PF_W) == 0;
    }
  }
  return 1; /* the first object is the main program: the only one postject writes to */
}

static napi_value release_sea_blob(napi_env env, napi_callback_info info) {
  (void)info;
  struct blob b = {0, 0, 0};
  dl_iterate_phdr(find_blob, &b);
  uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  /* Only whole pages inside the blob: the partial pages at its ends stay. */
  uintptr_t from = (b.start + page - 1) & ~(page - 1);
  uintptr_t to = b.end & ~(page - 1);
  double advised = 0;
  if (b.start != 0 && b.read_only && to > from) {
    if (madvise((void *)from, to - from, MADV_DONTNEED) != 0) return nsm_throw_errno(env, "madvise", errno);
    advised = (double)(to - from);
  }
  napi_value r;
  napi_create_double(env, advised, &r);
  return r;
}

/* The main program's read-only PT_LOAD segments, in memory. */
struct ro_segments {
  uintptr_t start[16], end[16];
  int n;
};

static int find_ro_segments(struct dl_phdr_info *info, size_t size, void *opaque) {
  (void)size;
  struct ro_segments *r = opaque;
  for (int i = 0; i < info->dlpi_phnum && r->n < 16; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || (ph->p_flags & PF_W) != 0) continue;
    r->start[r->n] = info->dlpi_addr + ph->p_vaddr;
    r->end[r->n] = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
    r->n++;
  }
  return 1; /* the first object is the main program */
}

/*
 * Whether [s, e) lies inside the read-only segments, each taken on the whole pages its bytes touch
 * (as the loader maps them), adjacent ones together: the kernel merges the mappings of adjacent
 * segments with the same permissions into one (Node's several R E segments are one r-xp mapping).
 * PT_LOAD entries come sorted by address (the ELF spec requires it).
 */
static int inside_ro_segments(const struct ro_segments *r, uintptr_t s, uintptr_t e) {
  uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  for (int i = 0; i < r->n; i++) {
    uintptr_t from = r->start[i] & ~(page - 1);
    uintptr_t to = (r->end[i] + page - 1) & ~(page - 1);
    while (i + 1 < r->n && (r->start[i + 1] & ~(page - 1)) <= to) {
      i++;
      uintptr_t next = (r->end[i] + page - 1) & ~(page - 1);
      if (next > to) to = next;
    }
    if (s >= from && e <= to) return 1;
  }
  return 0;
}

/*
 * madvise(MADV_DONTNEED)s every mapping of /proc/self/smaps that lies inside a read-only PT_LOAD
 * segment of the main program, is not writable and has no anonymous page. Returns the bytes advised,
 * or -errno.
 */
static double release_ro_mappings(const struct ro_segments *r) {
  FILE *f = fopen("/proc/self/smaps", "re");
  if (f == NULL) return -(double)errno;
  char line[512];
  uintptr_t s = 0, e = 0;
  int candidate = 0;
  double advised = 0;
  int err = 0;
  while (fgets(line, sizeof line, f) != NULL) {
    unsigned long ls, le;
    char perms[5];
    if (sscanf(line, "%lx-%lx %4s", &ls, &le, perms) == 3 && strchr(line, ' ') != NULL &&
        line[strspn(line, "0123456789abcdef")] == '-') {
      s = ls;
      e = le;
      candidate = perms[1] != 'w' && inside_ro_segments(r, s, e);
      continue;
    }
    unsigned long anon_kb;
    if (candidate && sscanf(line, "Anonymous: %lu kB", &anon_kb) == 1) {
      candidate = 0;
      if (anon_kb != 0) continue;
      if (madvise((void *)s, e - s, MADV_DONTNEED) != 0) {
        err = errno;
        break;
      }
      advised += (double)(e - s);
    }
  }
  fclose(f);
  return err != 0 ? -(double)err : advised;
}

static napi_value release_program_pages(napi_env env, napi_callback_info info) {
  (void)info;
  struct ro_segments r = {{0}, {0}, 0};
  dl_iterate_phdr(find_ro_segments, &r);
  double advised = r.n == 0 ? 0 : release_ro_mappings(&r);
  if (advised < 0) return nsm_throw_errno(env, "madvise", (int)-advised);
  napi_value v;
  napi_create_double(env, advised, &v);
  return v;
}

void nsm_register_memory(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "mallocTrim", NAPI_AUTO_LENGTH, malloc_trim_js, NULL, &fn);
  napi_set_named_property(env, exports, "mallocTrim", fn);
  napi_create_function(env, "releaseSeaBlob", NAPI_AUTO_LENGTH, release_sea_blob, NULL, &fn);
  napi_set_named_property(env, exports, "releaseSeaBlob", fn);
  napi_create_function(env, "releaseProgramPages", NAPI_AUTO_LENGTH, release_program_pages, NULL, &fn);
  napi_set_named_property(env, exports, "releaseProgramPages", fn);
}
