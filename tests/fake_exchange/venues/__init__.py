"""One module per faked exchange; each has `handle(h, path, query, body)`,
answering through `h.reply(status, body, headers)` (`h` is the request
handler: `h.command`, `h.headers`), and puts its default key information in
shared.KEYINFO."""
from . import binance, bitget, bybit, coinbase, deribit, gate, htx, kraken, kucoin, okx

VENUES = {
    "binance": binance.handle, "okx": okx.handle, "bybit": bybit.handle, "bitget": bitget.handle,
    "kraken": kraken.handle, "kucoin": kucoin.handle, "gate": gate.handle, "deribit": deribit.handle,
    "coinbase": coinbase.handle, "htx": htx.handle,
}

# The main port's dispatch by path prefix (the first five venues only: the
# others' paths collide with these, so they answer on their own ports).
MAIN_PREFIXES = [
    (("/api/v3/", "/sapi/", "/fapi/", "/dapi/"), "binance"),
    (("/api/v5/",), "okx"),
    (("/api/v2/",), "bitget"),
    (("/v5/",), "bybit"),
    (("/0/",), "kraken"),
]
