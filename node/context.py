"""The node's long-lived parts, built once at start and reached from handlers via `NODE`."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from aiohttp import web

from node.catalogue import Catalogue
from node.ledger import Ledger
from node.pricing import Pricer
from node.settings import Settings
from node.store import Database


@dataclass
class Node:
    settings: Settings
    db: Database
    ledger: Ledger
    catalogue: Catalogue
    pricer: Pricer
    http: aiohttp.ClientSession


NODE = web.AppKey("node", Node)
