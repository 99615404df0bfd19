"""The operator's earnings paid to Lightning on their own: once the earnings reach
`[lightning] earnings_threshold_sats`, the node pays them, less a margin for the fees, to
`[lightning] earnings_address` (LNURL-pay). The payout hook caps amount + fees at what the node
owns beyond its debts, in the payout's own transaction, so no client's backing is ever paid
out, whatever runs at the same time (another instance's autopay included)."""

from __future__ import annotations

import logging
import time

from node.errors import NodeError
from node.money.books import earnings_msat
from node.money.ledger import Ledger
from node.money.lightning import Lightning, fee_margin_sat
from node.settings.money import LightningSection

log = logging.getLogger(__name__)
RETRY_AFTER_FAILURE_S = 60.0


class EarningsAutopay:
    def __init__(self, settings: LightningSection, ledger: Ledger, lightning: Lightning) -> None:
        self.settings, self.ledger, self.lightning = settings, ledger, lightning
        self._not_before = 0.0

    async def run(self) -> bool:
        """Pay the earnings out if they reached the threshold; whether a payment was made."""
        address, threshold = self.settings.earnings_address, self.settings.earnings_threshold_sats
        if not address or not threshold or time.monotonic() < self._not_before:
            return False
        earned = earnings_msat(self.ledger) // 1000
        if earned < threshold:
            return False
        margin = fee_margin_sat(earned)
        key = f"autopay-{time.time_ns()}"
        try:
            melted = await self.lightning.pay_earnings(None, address, earned - margin, key, None)
        except NodeError as exc:
            log.warning("automatic earnings payout failed: %s", exc.message)
            self._not_before = time.monotonic() + RETRY_AFTER_FAILURE_S
            return False
        log.info(
            "paid %d sat of earnings to Lightning (fee %d sat)", melted.amount_sat, melted.fee_sat
        )
        return True
