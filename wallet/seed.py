"""The wallet seed: 64 random bytes (the size of a BIP39 seed), kept hex-encoded in a 0600 file.

Everything the wallet ever held can be restored from the mints with this seed (NUT-13/09):
back it up; anyone who reads it can take the node's ecash.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

SEED_BYTES = 64


def load_or_create_seed(path: Path) -> bytes:
    path = Path(path)
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        seed = secrets.token_bytes(SEED_BYTES)
        # O_EXCL: two processes starting at once never overwrite each other's seed
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(seed.hex() + "\n")
            f.flush()
            os.fsync(f.fileno())
        return seed
    seed = bytes.fromhex(text)
    if len(seed) < 16:
        raise ValueError(f"seed file {path} is too short")
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)
    return seed
