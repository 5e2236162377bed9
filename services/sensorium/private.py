"""Files that hold secrets (the tokens file, the TLS key) must not be readable by other users.

A secret another account on the machine can read is no longer a secret, and nothing in the
server would notice. So the server refuses such a file, with the fix, instead of only warning:
a warning scrolls by, and the one run that matters is the one no one reads the log of.

Allowed: no access at all for others, and group access only when the file's group is the
server's own group (a Kubernetes Secret volume with `defaultMode: 0440` and the pod's `fsGroup`
set to the server's group: root owns the file, and the server reads it through that group).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


def exposure(path: Path, setting: str) -> str | None:
    """Why `path` is readable or writable by others and how to fix it, or None when it is not.
    Raises OSError when the file cannot be examined."""
    st = os.stat(path)
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o007:
        who = "every user on this machine"
    elif mode & 0o070 and st.st_gid != os.getegid():
        who = f"the members of group {st.st_gid}"
    else:
        return None
    return (f"{path} ({setting}) holds a secret that {who} may read or change (mode {mode:04o}); "
            f"the server refuses it: `chmod 600 {path}` (or 640 with the server's own group, "
            "as a Kubernetes Secret volume with fsGroup does)")
