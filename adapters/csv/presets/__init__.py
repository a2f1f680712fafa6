"""The presets, an explicit registry: name → a function binding the preset to a file's header."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import Callable

from adapters.csv.presets.base import Bound, Header


@dataclass(frozen=True)
class Context:
    """What a preset needs to know besides the header: the shop's settings and the command's options."""

    order_id_prefix: str = ""
    status_map: dict[str, str] = field(default_factory=dict)
    tz: tzinfo | None = None              # for dates written without an offset
    mapping: Path | None = None           # the generic preset's TOML file


def _shopify(header: Header, ctx: Context) -> Bound:
    from adapters.csv.presets.shopify import ShopifyExport
    return ShopifyExport(header, ctx.order_id_prefix, ctx.status_map)


def _woocommerce(header: Header, ctx: Context) -> Bound:
    from adapters.csv.presets.woocommerce import detect
    return detect(header, ctx)


def _generic(header: Header, ctx: Context) -> Bound:
    from adapters.csv.presets.generic import GenericMapping, load_mapping
    return GenericMapping(header, load_mapping(ctx.mapping), ctx)


PRESETS: dict[str, Callable[[Header, Context], Bound]] = {
    "shopify": _shopify,
    "woocommerce": _woocommerce,
    "generic": _generic,
}
