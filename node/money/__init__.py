"""Money: the ledger (accounts, reservations, entries), the books where the wallet and the
ledger meet (purposes, hooks, the earnings cap), payments (payers, tokens in, change out)."""
