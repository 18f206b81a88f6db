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
 */
#define _GNU_SOURCE
#include "addon.h"

#include <elf.h>
#include <errno.h>
#include <link.h>
#include <stdint.h>
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

void nsm_register_memory(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "mallocTrim", NAPI_AUTO_LENGTH, malloc_trim_js, NULL, &fn);
  napi_set_named_property(env, exports, "mallocTrim", fn);
  napi_create_function(env, "releaseSeaBlob", NAPI_AUTO_LENGTH, release_sea_blob, NULL, &fn);
  napi_set_named_property(env, exports, "releaseSeaBlob", fn);
}
