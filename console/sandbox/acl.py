"""POSIX access ACLs as the kernel reads them (system.posix_acl_access), for the checks of who
may read or change a folder: which folders a person may run in, which a Docker run may name."""

from __future__ import annotations

import errno
import os
import struct

__all__ = ["GROUP", "GROUP_OBJ", "MASK", "OTHER", "USER", "USER_OBJ", "acl_allows", "read_acl",
           "traverse_only_for"]

ACL_XATTR = "system.posix_acl_access"
USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20


def read_acl(where: str | int) -> list[tuple[int, int, int]] | None:
    """(tag, permissions, id) of each entry of the file's access ACL; None when it has none.
    An ACL that cannot be read counts as one that grants nothing (fail closed)."""
    if isinstance(where, int):  # an O_PATH descriptor takes no getxattr of its own
        where = f"/proc/self/fd/{where}"
    try:
        raw = os.getxattr(where, ACL_XATTR)
    except OSError as exc:
        return None if exc.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP) else []
    if len(raw) < 4 or (len(raw) - 4) % 8 or struct.unpack_from("<I", raw)[0] != 2:
        return []
    return [struct.unpack_from("<HHI", raw, at) for at in range(4, len(raw), 8)]


def acl_allows(acl: list[tuple[int, int, int]], st: os.stat_result, uid: int,
                groups: set[int], bits: int) -> bool:
    """The kernel's ACL check (posix_acl_permission): the owner's entry, a named user's
    (masked), the owning and named groups' (masked: any one granting all bits), else other."""
    mask = next((perm for tag, perm, _ in acl if tag == MASK), 7)
    if st.st_uid == uid:
        return any(tag == USER_OBJ and perm & bits == bits for tag, perm, _ in acl)
    for tag, perm, who in acl:
        if tag == USER and who == uid:
            return perm & mask & bits == bits
    matched = [perm for tag, perm, who in acl
               if (tag == GROUP_OBJ and st.st_gid in groups) or (tag == GROUP and who in groups)]
    if matched:
        return any(perm & mask & bits == bits for perm in matched)
    return any(tag == OTHER and perm & bits == bits for tag, perm, _ in acl)


def traverse_only_for(path: str, uid: int) -> None:
    """Give one user search (x) on a folder and nobody else anything but its owner: owner rwx,
    user:uid --x, group ---, mask --x, other ---. OSError where the file system has no ACLs."""
    undefined = 0xFFFFFFFF
    entries = [(USER_OBJ, 7, undefined), (USER, 1, uid), (GROUP_OBJ, 0, undefined),
               (MASK, 1, undefined), (OTHER, 0, undefined)]
    os.setxattr(path, ACL_XATTR, struct.pack("<I", 2) + b"".join(
        struct.pack("<HHI", *entry) for entry in entries))
