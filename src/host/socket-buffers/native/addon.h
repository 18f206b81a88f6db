/*
 * nsm-agent native helper: what its source files share. The addon is one .node built from every
 * .c file in this folder (packaging/build-native.mjs), so the single binary embeds one asset.
 *   udp-socket-buffers.c  udpBuffers, notify, the module's entry point and the errno helper
 *   icmp-liveness.c       icmpOpen, icmpSend, icmpReceive, icmpClose (data-plane liveness pings)
 *   process-memory.c      mallocTrim, releaseSeaBlob, releaseProgramPages (the idle daemon's memory back to the OS)
 */
#ifndef NSM_AGENT_NATIVE_ADDON_H
#define NSM_AGENT_NATIVE_ADDON_H

#define NAPI_VERSION 8
#include <node_api.h>

/* Throws an Error whose `code` is the errno name (EPERM, ENODEV …) and `syscall` is `call`; returns NULL. */
napi_value nsm_throw_errno(napi_env env, const char *call, int e);

/* Sets obj[key] = v (a JS number). */
void nsm_set_number(napi_env env, napi_value obj, const char *key, double v);

/* Adds the ICMP functions to the module's exports. */
void nsm_register_icmp(napi_env env, napi_value exports);

/* Adds mallocTrim, releaseSeaBlob and releaseProgramPages to the module's exports. */
void nsm_register_memory(napi_env env, napi_value exports);

#endif
