"""The models this node sells: which upstreams serve each (in failover order), at what price;
each found is a `Model` (node/pricing/model.py).

A model id is found, first match wins, as:

    alias        [[models]].aliases → the model's id
    selector     model/name=<id> and bot/id=<preset> (node/pricing/selectors.py)
    preset/<n>   a [[presets]] entry: another model plus a system prompt (node/pricing/presets.py)
    explicit     a [[models]] entry: its `upstream` then its `upstreams`
    listed       in an upstream's GET /models (every upstream listing it, in config order)
    prefix       matches an upstream's `prefixes` (or the built-in rules for its host)

Prices come from `price_for` — the seam to `node.pricing.sources`: [[models]] price, else the
upstream's catalogue, else bundled genai-prices, else the upstream's default price; a model none
of them prices is not offered (never served for free).
"""

from __future__ import annotations

import fnmatch
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any
from urllib.parse import urlsplit

from node.errors import BadRequest, NotFound
from node.pricing import billing, selectors
from node.pricing.model import Model, Route
from node.pricing.prices import Price, dearest, exact
from node.pricing.sources import CatalogueEntry, resolve_price
from node.settings import Settings
from node.settings.catalogue import ModelSection, RouterSection, UpstreamSection

log = logging.getLogger(__name__)

PRESET_PREFIX = selectors.PRESET_PREFIX
MAX_PREFIXED = 1000  # prefix-routed models remembered (clients choose the ids)

# Which model ids each well-known provider serves (the routing rules of reference 001).
BUILTIN_PREFIXES: dict[str, tuple[str, ...]] = {
    "api.openai.com": ("gpt-*", "o1", "o1-*", "o3", "o3-*", "o4-*", "chatgpt-*", "text-embedding-*",
                       "dall-e-*", "whisper-*"),
    "generativelanguage.googleapis.com": ("gemini-*", "gemma-*"),
    "api.anthropic.com": ("claude-*",),
    "api.x.ai": ("grok-*",),
}  # fmt: skip


@dataclass(frozen=True)
class _Priced:
    upstreams: tuple[UpstreamSection, ...]
    price: Price
    context: int | None
    max_output: int | None
    context_known: bool


def prefixes_of(upstream: UpstreamSection) -> tuple[str, ...]:
    if upstream.prefixes is not None:
        return tuple(upstream.prefixes)
    return BUILTIN_PREFIXES.get(urlsplit(upstream.base_url).hostname or "", ())


def price_for(
    model_id: str,
    upstream: UpstreamSection,
    listing: Mapping[str, CatalogueEntry] | None,
    section: ModelSection | None = None,
    *,
    prefixed: bool = False,
) -> tuple[Price, int | None, int | None] | None:
    """(price, context length, max output) from the first source that has one; None: unsold.

    `prefixed`: the id is one a client made up, reached by prefix routing: genai-prices counts
    only if it prices that very id, and a miss is logged at DEBUG (clients choose the ids)."""
    if section is not None and not _token_priced(section):
        return None
    found = resolve_price(
        model_id,
        section=section,
        catalogue=listing,
        provider_api_url=upstream.base_url,
        exact=prefixed,
        quiet=prefixed,
    )
    result: tuple[Price, int | None, int | None] | None = None
    if found is not None:
        result = found, found.context_length, found.max_output_tokens
    elif (
        upstream.default_input_usd_per_mtok is not None
        and upstream.default_output_usd_per_mtok is not None
    ):
        default = Price.per_million(
            upstream.default_input_usd_per_mtok, upstream.default_output_usd_per_mtok
        )
        result = default, None, None
    sent = (section.upstream_model if section else "") or model_id
    if result is not None and result[0].request == 0 and billing.bills_per_call(sent):
        level = logging.DEBUG if prefixed else logging.WARNING
        log.log(level, "model %s is not offered: it bills per call and has no per-request "
                "price ([[models]] request_usd)", model_id)  # fmt: skip
        return None
    return result


def _token_priced(section: ModelSection) -> bool:
    """False for a model the operator priced only per image or per minute."""
    units = section.image_output_usd is not None or section.audio_usd_per_minute is not None
    tokens = {"input_usd_per_mtok", "output_usd_per_mtok"} & section.model_fields_set
    return tokens != set() or not units


class Catalogue:
    def __init__(
        self, settings: Settings, listings: dict[str, dict[str, CatalogueEntry]] | None = None
    ):
        self.settings = settings
        self._upstreams = {u.name: u for u in settings.upstreams}
        self._listings: dict[str, dict[str, CatalogueEntry]] = dict(listings or {})
        self._created = int(time.time())
        self._rebuild()

    @classmethod
    def from_settings(cls, settings: Settings) -> Catalogue:
        return cls(settings)

    def rebuilt(self, settings: Settings) -> Catalogue:
        """The catalogue of new settings, keeping the listings of the upstreams still named
        (an admin save must not drop listed models until the next refresh)."""
        names = {u.name for u in settings.upstreams if u.list_models}
        kept = {name: entries for name, entries in self._listings.items() if name in names}
        return Catalogue(settings, kept)

    # --- building ------------------------------------------------------------------------

    def set_listing(self, upstream: str, entries: dict[str, CatalogueEntry]) -> None:
        """A fresh GET /models of `upstream`: models it lists are offered (when priced)."""
        self._listings[upstream] = entries
        self._rebuild()

    def _rebuild(self) -> None:
        models: dict[str, Model] = {}
        aliases: dict[str, str] = {}
        explicit = {section.id for section in self.settings.models}  # priced by their entry
        for upstream in self.settings.upstreams:
            if not upstream.list_models:
                continue
            for model_id in self._listings.get(upstream.name, {}):
                if model_id not in models and model_id not in explicit:
                    found = self._listed(model_id)
                    if found is not None:
                        models[model_id] = found
        for section in self.settings.models:
            model = self._explicit(section)
            if model is not None:
                models[model.id] = model
                aliases.update(dict.fromkeys(section.aliases, model.id))
        self._models, self._aliases = models, aliases
        self._prefixed: dict[str, Model | None] = {}

    def _explicit(self, section: ModelSection) -> Model | None:
        names = [n for n in [section.upstream, *section.upstreams] if n]
        if not names and not self.settings.upstreams:
            return None
        chosen = [self._upstreams[n] for n in dict.fromkeys(names)]
        upstreams = chosen or self.settings.upstreams[:1]
        upstream_model = section.upstream_model or section.id
        found = self._priced(section.id, upstreams, section)
        if found is None and _token_priced(section):
            return None
        token_priced = found is not None
        # Priced per image or minute only: token endpoints refuse it (see node/proxy/meters.py).
        if found is None:
            found = _Priced(tuple(upstreams), Price(Fraction(0), Fraction(0)), None, None, False)
        return Model(
            id=section.id,
            routes=tuple(Route(u, upstream_model) for u in found.upstreams),
            price=found.price,
            context_length=found.context or section.context_length,
            max_output_tokens=found.max_output or section.max_output_tokens,
            created=self._created,
            image_usd=_usd(section.image_output_usd),
            audio_minute_usd=_usd(section.audio_usd_per_minute),
            max_audio_seconds=section.max_audio_seconds,
            token_priced=token_priced,
            completions=_completions(section.completions, upstream_model),
            name=section.name,
            description=section.description,
            about=self._about(upstreams[0], upstream_model),
        )

    def _listed(self, model_id: str) -> Model | None:
        upstreams = [
            u
            for u in self.settings.upstreams
            if u.list_models and model_id in self._listings.get(u.name, {})
        ]
        return self._routed(model_id, upstreams)

    def _routed(
        self, model_id: str, upstreams: list[UpstreamSection], prefixed: bool = False
    ) -> Model | None:
        found = self._priced(model_id, upstreams, prefixed=prefixed)
        if found is None:
            return None
        defaults = ModelSection(id=model_id)
        return Model(
            id=model_id,
            routes=tuple(Route(u, model_id) for u in found.upstreams),
            price=found.price,
            context_length=found.context or defaults.context_length,
            max_output_tokens=found.max_output or defaults.max_output_tokens,
            created=self._created,
            context_known=found.context_known,
            max_audio_seconds=defaults.max_audio_seconds,
            completions=_completions(None, model_id),
            about=self._about(found.upstreams[0], model_id),
        )

    def _priced(
        self,
        model_id: str,
        upstreams: list[UpstreamSection],
        section: ModelSection | None = None,
        prefixed: bool = False,
    ) -> _Priced | None:
        """The upstreams that price the model, and a price and context that hold whichever
        of them answers (a failover bills at the next one's price): the dearest price, the
        largest context (an upstream bills no prompt past its own)."""
        priced = []
        for upstream in upstreams:
            listing = self._listings.get(upstream.name)
            found = price_for(model_id, upstream, listing, section, prefixed=prefixed)
            if found is not None:
                priced.append((upstream, found))
        if not priced:
            return None
        contexts = [found[1] for _, found in priced]
        known = [c for c in contexts if c is not None]
        return _Priced(
            upstreams=tuple(u for u, _ in priced),
            price=dearest([found[0] for _, found in priced]),
            context=max(known) if known else None,
            max_output=priced[0][1][2],
            context_known=len(known) == len(contexts),
        )

    def _about(self, upstream: UpstreamSection, upstream_model: str) -> tuple[tuple[str, Any], ...]:
        entry = self._listings.get(upstream.name, {}).get(upstream_model)
        return entry.about if entry is not None else ()

    # --- finding ---------------------------------------------------------------------------

    def get(self, model_id: Any) -> Model:
        billing.check_model_id(model_id)  # before any lookup, memo or log line
        if not isinstance(model_id, str) or not model_id:
            raise NotFound("no model given", param="model", code="model_not_found")
        model_id = selectors.resolve(model_id)
        if model_id.startswith(PRESET_PREFIX):
            return self._preset(model_id)
        model_id = self._aliases.get(model_id, model_id)
        model = self._models.get(model_id) or self._router(model_id) or self._by_prefix(model_id)
        if model is None:
            raise NotFound(
                f"the model {model_id!r} does not exist on this node",
                param="model",
                code="model_not_found",
            )
        return model

    def names_of(self, model_id: str) -> tuple[str, ...]:
        """A model's id and the aliases that name it (a key's model list may use any)."""
        return (model_id, *(a for a, target in self._aliases.items() if target == model_id))

    def _by_prefix(self, model_id: str) -> Model | None:
        if model_id in self._prefixed:  # misses too: a price lookup logs why it failed
            return self._prefixed[model_id]
        upstreams = [
            u
            for u in self.settings.upstreams
            if any(fnmatch.fnmatchcase(model_id, p) for p in prefixes_of(u))
        ]
        model = self._routed(model_id, upstreams, prefixed=True)
        if len(self._prefixed) >= MAX_PREFIXED:  # the oldest goes: ids clients made up pile up
            del self._prefixed[next(iter(self._prefixed))]
        self._prefixed[model_id] = model
        return model

    def _preset(self, selector: str) -> Model:
        name = selector[len(PRESET_PREFIX) :]
        preset = next((p for p in self.settings.presets if p.name == name), None)
        if preset is None:
            raise BadRequest(
                f"unknown preset {selector!r}; see GET /v1/models for this node's presets",
                param="model",
                code="invalid_model_selector",
            )
        try:
            if selectors.resolve(preset.model).startswith(PRESET_PREFIX):  # one layer: no loops
                raise NotFound(f"preset {selector!r} runs on another preset")
            target = self.get(preset.model)
        except NotFound as exc:
            raise BadRequest(
                f"preset {selector!r} runs on a model this node does not offer",
                param="model",
                code="invalid_model_selector",
            ) from exc
        return replace(target, id=selector, preset=preset, description=preset.description)

    def _router(self, name: str) -> Model | None:
        """A router, shown as its first candidate (chosen per request: node/proxy/router.py)."""
        router = next((r for r in self.settings.routers if r.name == name), None)
        if router is None:
            return None
        for candidate in router.candidates:
            model = self._models.get(self._aliases.get(candidate, candidate))
            if model is not None:
                return replace(model, id=name, router=router, description=router.description)
        return None

    def candidates(self, router: RouterSection) -> list[Model]:
        """The models a router may choose among, those this node offers, in its order."""
        found = [self._models.get(self._aliases.get(c, c)) for c in router.candidates]
        return [m for m in found if m is not None]

    def all(self) -> list[Model]:
        models = list(self._models.values())
        models += [m for r in self.settings.routers if (m := self._router(r.name)) is not None]
        for preset in self.settings.presets:
            try:
                models.append(self._preset(PRESET_PREFIX + preset.name))
            except BadRequest:
                log.warning("preset %s: its model %r is not offered", preset.name, preset.model)
        return models

    def served_by(self, upstream: str) -> list[Model]:
        return [
            m for m in self._models.values() if any(r.upstream.name == upstream for r in m.routes)
        ]


COMPLETIONS_MODELS = ("*instruct*", "davinci-*", "babbage-*")  # the rest speak chat only


def _completions(given: bool | None, upstream_model: str) -> bool:
    if given is not None:
        return given
    return any(fnmatch.fnmatchcase(upstream_model.lower(), p) for p in COMPLETIONS_MODELS)


def _usd(value: float | None) -> Fraction | None:
    return exact(value) if value is not None else None
