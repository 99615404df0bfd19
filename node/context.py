"""The node's long-lived parts, built once at start and reached from handlers via `NODE`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from node.db.store import Store
from node.money.ledger import Ledger
from node.nostr.service import NostrService
from node.pricing.btc_rate import BtcRate
from node.pricing.catalogue import Catalogue
from node.pricing.prices import Pricer
from node.settings import Settings
from wallet import Wallet

if TYPE_CHECKING:
    from node.money.payments import Payments


@dataclass
class Node:
    settings: Settings
    db: Store
    ledger: Ledger
    catalogue: Catalogue
    pricer: Pricer
    http: aiohttp.ClientSession
    wallet: Wallet
    nostr: NostrService
    payments: Payments = field(init=False)
    rate: BtcRate = field(init=False)  # replaced by the admin when the rate settings change


NODE = web.AppKey("node", Node)
