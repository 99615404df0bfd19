"""The ledger's statements on the money path, built once (node.money.ledger runs them)."""

from __future__ import annotations

from node.money import ledger_pg

# What an account may withdraw: its balance less what is held for requests or is operator
# credit (a charge takes credit first, so a reservation may be paid from credit).
WITHDRAWABLE = (
    "balance_msat - CASE WHEN reserved_msat > credit_msat THEN reserved_msat ELSE credit_msat END"
)

ACCOUNT = "id, kind, balance_msat, reserved_msat, mint, credit_msat"
# Hold :a on the account when its available balance covers it; a one-shot account (untouched)
# keeps the id of the request that spends it (its change's name); a key answered from memory
# as having no rules (ruleless) still has none. By (one-shot, ruleless); built once.
HOLD = {
    (spends, ruleless): "UPDATE accounts SET reserved_msat = reserved_msat + :a,"
    " last_used_at = :now, requests = requests + 1"
    + (", request_id = :rid" if spends else "")
    + " WHERE id = :id AND balance_msat - reserved_msat >= :a"
    + (ledger_pg.UNTOUCHED if spends else "")
    + (ledger_pg.RULELESS if ruleless else "")
    for spends in (False, True)
    for ruleless in (False, True)
}
USED = "UPDATE accounts SET last_used_at = ?, requests = requests + 1 WHERE id = ?"
RESERVATION = (
    "INSERT INTO reservations (id, account_id, amount_msat, floor_msat, model, created_at,"
    " instance, key_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
TAKE = "DELETE FROM reservations WHERE id = ? RETURNING account_id, amount_msat, key_id"
AVAILABLE = "SELECT balance_msat - reserved_msat FROM accounts WHERE id = ?"
CHARGE = (  # a charge takes operator credit first
    "UPDATE accounts SET balance_msat = balance_msat - :c, reserved_msat = reserved_msat - :h,"
    " credit_msat = CASE WHEN credit_msat > :c THEN credit_msat - :c ELSE 0 END WHERE id = :id"
)
ENTRY = (
    "INSERT INTO entries (account_id, kind, amount_msat, ref, created_at, key_id)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
