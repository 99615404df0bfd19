"""Prices: the one price type and the pricer (USD to msat), where prices come from, the
catalogue of models sold, the BTC rate, presets."""
