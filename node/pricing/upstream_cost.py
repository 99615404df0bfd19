"""What the upstream billed for a request, in msat at the node's BTC rate: the operator's cost.

A request that used tokens: its usage at the model's upstream price (the [[models]] price, the
upstream's catalogue, …), with no markup, request fee or minimum charge. Any other (priced per
image or minute, or an attempt the upstream bills without an answer, charged the reservation):
the charge less the node's request fee, divided by the markup. Cache writes are not in a
request's record, so they count at the input price.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

from node.errors import NodeError
from node.pricing.catalogue import Catalogue
from node.pricing.prices import Pricer, Usage


class UpstreamCost:
    def __init__(self, catalogue: Callable[[], Catalogue], pricer: Callable[[], Pricer]) -> None:
        self._catalogue, self._pricer = catalogue, pricer  # read at each call: an admin save
        self._bare: tuple[Pricer | None, Pricer | None] = (None, None)  # replaces both

    def msat(self, model_id: str, usage: Usage, charged_msat: int) -> int:
        pricer = self._pricer()
        if usage.prompt_tokens or usage.completion_tokens:
            try:
                model = self._catalogue().get(model_id)
                if model.token_priced:
                    return self._without_markup(pricer).cost_msat(model.price, usage)
            except NodeError:  # the model was removed since, or there is no BTC rate now
                pass
        return from_charge(charged_msat, pricer.request_fee_msat, pricer.markup)

    def _without_markup(self, pricer: Pricer) -> Pricer:
        """The node's pricer at markup 1 and no fees (kept: it memoizes its tariffs)."""
        of, bare = self._bare
        if of is not pricer or bare is None:
            bare = Pricer(pricer.rate)
            self._bare = (pricer, bare)
        return bare


def from_charge(charged_msat: int, request_fee_msat: int, markup: Fraction) -> int:
    """The charge less the node's request fee, divided by its markup."""
    return int(max(0, charged_msat - request_fee_msat) // markup)
