"""The wallet seed: 64 random bytes (the size of a BIP39 seed), kept hex-encoded in a 0600 file.

Everything the wallet ever held can be restored from the mints with this seed (NUT-13/09):
back it up; anyone who reads it can take the node's ecash.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from wallet.store import Database, shared_secret

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


class SeedMismatch(ValueError):
    pass


def shared_seed(db: Database, path: Path) -> bytes:
    """The seed of several node instances on one database: kept in the database, where the
    first instance to start stores its file's seed (or a new one). An instance whose data_dir
    holds a different seed refuses to start: its outputs would not be the others'."""
    path = Path(path)
    own = bytes.fromhex(path.read_text().strip()) if path.exists() else None
    candidate = own if own is not None else secrets.token_bytes(SEED_BYTES)
    seed = bytes.fromhex(shared_secret(db, "seed", candidate.hex()))
    if own is not None and own != seed:
        raise SeedMismatch(
            f"{path} holds another seed than the shared database: move it away (after checking"
            " it holds no funds) or point this node at its own database"
        )
    return seed
