"""The ledger's tables (series "node" of the database): accounts, reservations, entries.

- accounts      one per key, token or one-shot payment: `balance_msat` (owned), `reserved_msat`
                (held for requests in flight), `credit_msat` (the part of the balance granted
                by the operator: spent first, never paid out), and for a one-shot (X-Cashu)
                account the request that spent it and the Idempotency-Key it came with.
- reservations  one per request in flight (see Ledger.reserve / settle / resolve_orphans).
- entries       append-only: every change of a balance, so `audit()` can recompute it.
"""

# Entry kinds: money in (+) and out (-) of an account.
GRANT = "grant"  # operator-funded key: credit, spend-only
DEPOSIT = "deposit"  # ecash redeemed into the account
CHARGE = "charge"  # a request's cost (taken from credit first)
WITHDRAW = "withdraw"  # ecash paid out of the account
PAYOUT_FEE = "payout_fee"  # the mint's fee on the node's swap for that payout
REFUND = "refund"  # a withdrawal that failed, returned (amount and fee)

MIGRATIONS = [
    """
    CREATE TABLE accounts (
        id INTEGER PRIMARY KEY,
        key_hash TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        balance_msat INTEGER NOT NULL DEFAULT 0 CHECK (balance_msat >= 0),
        reserved_msat INTEGER NOT NULL DEFAULT 0
            CHECK (reserved_msat >= 0 AND reserved_msat <= balance_msat),
        mint TEXT,
        created_at INTEGER NOT NULL,
        last_used_at INTEGER,
        requests INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE reservations (
        id TEXT PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id),
        amount_msat INTEGER NOT NULL CHECK (amount_msat >= 0),
        floor_msat INTEGER NOT NULL CHECK (floor_msat >= 0),
        model TEXT,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX reservations_account ON reservations(account_id);
    CREATE TABLE entries (
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id),
        kind TEXT NOT NULL,
        amount_msat INTEGER NOT NULL,
        ref TEXT,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX entries_account ON entries(account_id);
    CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries
        BEGIN SELECT RAISE(ABORT, 'entries are append-only'); END;
    CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries
        BEGIN SELECT RAISE(ABORT, 'entries are append-only'); END;
    """,
    "ALTER TABLE reservations ADD COLUMN instance TEXT;",
    # credit_msat: the part of the balance the operator granted (spend-only, never paid out);
    # request_id / idempotency_key: the X-Cashu request that spent a one-shot account, and the
    # Idempotency-Key (hashed) it came with, so a retry can be given its change
    """
    ALTER TABLE accounts ADD COLUMN credit_msat INTEGER NOT NULL DEFAULT 0
        CHECK (credit_msat >= 0 AND credit_msat <= balance_msat);
    ALTER TABLE accounts ADD COLUMN request_id TEXT;
    ALTER TABLE accounts ADD COLUMN idempotency_key TEXT;
    UPDATE accounts SET credit_msat = CASE
        WHEN (SELECT COALESCE(SUM(e.amount_msat), 0) FROM entries e WHERE e.account_id = accounts.id
              AND e.kind IN ('grant', 'charge')) <= 0 THEN 0
        WHEN (SELECT COALESCE(SUM(e.amount_msat), 0) FROM entries e WHERE e.account_id = accounts.id
              AND e.kind IN ('grant', 'charge')) >= balance_msat THEN balance_msat
        ELSE (SELECT COALESCE(SUM(e.amount_msat), 0) FROM entries e WHERE e.account_id = accounts.id
              AND e.kind IN ('grant', 'charge')) END
    WHERE EXISTS (SELECT 1 FROM entries e WHERE e.account_id = accounts.id AND e.kind = 'grant');
    """,
    # key_id: the key a request was made with, when it is not the account's own (a sub-key
    # spends from its parent's balance): its period's spend is summed from its charges
    """
    ALTER TABLE reservations ADD COLUMN key_id INTEGER;
    ALTER TABLE entries ADD COLUMN key_id INTEGER;
    CREATE INDEX entries_key ON entries(key_id, created_at);
    CREATE INDEX reservations_key ON reservations(key_id);
    """,
    # a key that owns its account counts its period's spending over the whole account
    "CREATE INDEX entries_account_time ON entries(account_id, created_at);",
]
