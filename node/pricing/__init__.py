"""Prices: the one price type and the pricer (USD to msat), where prices come from, what a
request's shape can cost (billing rules), the catalogue of models sold, the BTC rate, presets."""
