/* mechanisms.h - one file per kernel mechanism, used by the orchestrator in runtime.c.
 * Internal to src/runtime. All calls blocking; negative errno on failure; no logging.
 */
#ifndef WARREN_RT_MECHANISMS_H
#define WARREN_RT_MECHANISMS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "runtime.h"

/* ---- cgroup.c: cgroup v2 where its controllers are there, v1 otherwise ---- */

/* Detect the mode (mode RT_CGROUP_AUTO: v2 when memory, pids and cpu controllers are
 * available on the unified hierarchy, else v1) and create the parent group "warren" in each
 * hierarchy used (enabling controllers in cgroup.subtree_control on v2). */
int cg_init(enum rt_cgroup_mode mode);
/* "v1" or "v2". */
const char *cg_mode_name(void);
/* Create the sandbox's group(s) and apply limits (cpu, memory, pids). */
int cg_create(const char *id, const struct rt_limits *lim);
/* Move pid into the sandbox's group(s). */
int cg_attach(const char *id, pid_t pid);
/* Number of tasks in the group, 0 if empty, -ENOENT if missing. */
int cg_count_tasks(const char *id);
/* SIGKILL every task listed in the group(s) (v2: cgroup.kill when present). */
int cg_kill_all(const char *id);
/* Remove the group(s); -EBUSY while tasks remain. Missing is fine. */
int cg_destroy(const char *id);
/* Current memory use and task count. */
int cg_usage(const char *id, uint64_t *ret_memory_bytes, uint64_t *ret_pids);

/* ---- disk.c: per-sandbox size-limited disk (sparse ext4 image, no journal) and the pool
 * of blank images made ahead (POOL below is DATA_DIR/disks; see disk.c for its layout) ---- */

/* Name of the image in a sandbox's data directory. */
#define DISK_IMAGE_NAME "disk.img"

/* Create dir (0700, owned by host root; its parent must exist, dir must not: -EEXIST) holding
 * DISK_IMAGE_NAME: a sparse file of size bytes (>= 16 MiB) with an ext4 filesystem without
 * a journal, populated with the directories of launch_disk_dirs (src/init/launch_msg.h) with
 * their modes, owned by host root: warren-init gives them to the sandbox's uids at start.
 * With a pool (POOL, or NULL for none) a ready entry of exactly that size is taken (renamed
 * to dir) if there is one; else dir is made and mke2fs -d run as a child process (nothing is
 * mounted on the host). *ret_pooled (may be NULL) says which. On failure nothing is left. */
int disk_create(const char *pool, const char *dir, uint64_t size, bool *ret_pooled);
/* Create POOL/ready (0700) and empty POOL/tmp (images half made by a process that died).
 * Call once at start, before any disk_pool_fill(). */
int disk_pool_prepare(const char *pool);
/* Number of ready entries (images) of size bytes in POOL (0 if none). */
int disk_pool_count(const char *pool, uint64_t size);
/* Make ready entries (images) of size bytes until target are ready (counting those there), at
 * most max in this call; *ret_made (may be NULL) says how many were made. Each is made in
 * POOL/tmp and renamed among the ready ones only once finished. Concurrent calls may overshoot the
 * target by up to max each; the caller serialises them. */
int disk_pool_fill(const char *pool, uint64_t size, unsigned target, unsigned max,
                   unsigned *ret_made);

/* ---- template.c: templates under data_dir/templates ---- */

/* Assemble data_dir/templates/base/rootfs if missing (see docs/architecture.md): a skeleton
 * root with a generated /etc, usrmerge symlinks (/bin -> usr/bin, ...), an empty usr/ mount
 * point (the host's /usr is bind-mounted read-only there at sandbox start), built atomically
 * (build in a temporary directory, rename). */
int tpl_ensure_base(const char *data_dir);
/* Path of a template's rootfs into buf. -ENOENT if it does not exist. */
int tpl_rootfs_path(const char *data_dir, const char *name, char *buf, size_t len);
/* Whether the template asks for the host's /usr bind-mounted read-only at /usr (the marker
 * file data_dir/templates/NAME/bind-host-usr exists; `base` has it). */
bool tpl_binds_host_usr(const char *data_dir, const char *name);

/* ---- seccomp.c: the filter every sandboxed process gets ---- */

/* Build the filter (an allow list at least as strict as Docker's default profile, with the
 * argument filters on clone/socket/personality/ioctl; clone3 -> ENOSYS; other ABIs denied)
 * and write it as raw struct sock_filter instructions to path (mode 0644). */
int seccomp_write_bpf(const char *path);

#endif
