// Kernel interfaces newer than Debian 12's headers (linux-libc-dev 6.1). Kept in one place.
#pragma once

#include <linux/types.h>
#include <sys/syscall.h>

#ifndef __NR_landlock_create_ruleset
#define __NR_landlock_create_ruleset 444
#define __NR_landlock_add_rule 445
#define __NR_landlock_restrict_self 446
#endif
#ifndef __NR_close_range
#define __NR_close_range 436
#endif
#ifndef __NR_open_tree
#define __NR_open_tree 428
#define __NR_move_mount 429
#endif
#ifndef __NR_mount_setattr
#define __NR_mount_setattr 442
#endif
#ifndef __NR_pidfd_send_signal
#define __NR_pidfd_send_signal 424
#endif
#ifndef __NR_pidfd_open
#define __NR_pidfd_open 434
#endif

namespace corral::sandbox::kernel {

// <linux/pidfd.h> (Linux 6.13+; exit information from 6.15): struct pidfd_info, version 0.
struct PidfdInfo {
  __u64 mask;
  __u64 cgroupid;
  __u32 pid, tgid, ppid, ruid, rgid, euid, egid, suid, sgid, fsuid, fsgid;
  __s32 exit_code;  // a wait status
};
static_assert(sizeof(PidfdInfo) == 64);
inline constexpr __u64 kPidfdInfoExit = 1ULL << 3;
// _IOWR(PIDFS_IOCTL_MAGIC 0xFF, 11, struct pidfd_info)
inline constexpr unsigned long kPidfdGetInfo =
    (3UL << 30) | (sizeof(PidfdInfo) << 16) | (0xFFUL << 8) | 11UL;

// <linux/landlock.h>, up to ABI 6.
inline constexpr unsigned kLandlockCreateRulesetVersion = 1U << 0;
inline constexpr int kLandlockRulePathBeneath = 1;
struct LandlockRulesetAttr {
  __u64 handled_access_fs;
  __u64 handled_access_net;  // ABI 4
  __u64 scoped;              // ABI 6
};
struct __attribute__((packed)) LandlockPathBeneathAttr {
  __u64 allowed_access;
  __s32 parent_fd;
};
inline constexpr __u64 kFsExecute = 1ULL << 0;
inline constexpr __u64 kFsWriteFile = 1ULL << 1;
inline constexpr __u64 kFsReadFile = 1ULL << 2;
inline constexpr __u64 kFsReadDir = 1ULL << 3;
inline constexpr __u64 kFsRemoveDir = 1ULL << 4;
inline constexpr __u64 kFsRemoveFile = 1ULL << 5;
inline constexpr __u64 kFsMakeChar = 1ULL << 6;
inline constexpr __u64 kFsMakeDir = 1ULL << 7;
inline constexpr __u64 kFsMakeReg = 1ULL << 8;
inline constexpr __u64 kFsMakeSock = 1ULL << 9;
inline constexpr __u64 kFsMakeFifo = 1ULL << 10;
inline constexpr __u64 kFsMakeBlock = 1ULL << 11;
inline constexpr __u64 kFsMakeSym = 1ULL << 12;
inline constexpr __u64 kFsRefer = 1ULL << 13;     // ABI 2
inline constexpr __u64 kFsTruncate = 1ULL << 14;  // ABI 3
inline constexpr __u64 kFsIoctlDev = 1ULL << 15;  // ABI 5
inline constexpr __u64 kScopeAbstractUnixSocket = 1ULL << 0;  // ABI 6
inline constexpr __u64 kScopeSignal = 1ULL << 1;              // ABI 6

// <linux/mount.h>
inline constexpr unsigned kOpenTreeClone = 1;
inline constexpr unsigned kMoveMountFEmptyPath = 0x00000004;
inline constexpr __u64 kMountAttrRdonly = 0x00000001;
inline constexpr __u64 kMountAttrNosuid = 0x00000002;
inline constexpr __u64 kMountAttrNodev = 0x00000004;
inline constexpr __u64 kMountAttrNoexec = 0x00000008;
inline constexpr __u64 kMountAttrIdmap = 0x00100000;
struct MountAttr {
  __u64 attr_set;
  __u64 attr_clr;
  __u64 propagation;
  __u64 userns_fd;
};

}  // namespace corral::sandbox::kernel
