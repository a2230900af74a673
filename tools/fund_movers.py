#!/usr/bin/env python3
"""The fund-movers table: every endpoint in ccxt's snapshot whose name says it
moves funds, manages keys or sub-accounts, borrows, or mints tokens, with the
class its name gives it, for the exchanges' hosts keyward signs for. keyward
classifies a request by its exchange's own catalog first; an endpoint the
catalog does not list but this table does is classed here, so no fund mover
is ever `public`, `read`, `trade`, `cancel` or unknown. The rules below are
pessimistic: a name that could move funds takes the more dangerous class.

    python3 tools/fund_movers.py > crates/keyward-exchanges/catalog/fund-movers.tsv

Reads crates/keyward-exchanges/tests/vectors/ccxt-endpoints.json (see
tools/ccxt_endpoints.py). Review the diff of the table like code.
"""
import json
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
SNAPSHOT = os.path.join(HERE, "..", "crates", "keyward-exchanges", "tests", "vectors", "ccxt-endpoints.json")

# The hosts keyward sends each exchange's requests to (its base URLs).
HOSTS = {
    "binance": {"api.binance.com", "fapi.binance.com"},
    "okx": {"www.okx.com"},
    "bybit": {"api.bybit.com"},
    "kraken": {"api.kraken.com"},
    "kucoin": {"api.kucoin.com"},
    "bitget": {"api.bitget.com"},
    "gate": {"api.gateio.ws"},
    "deribit": {"www.deribit.com"},
    "coinbase": {"api.coinbase.com"},
    "htx": {"api.huobi.pro"},
}

# Words that mark a fund mover, a key or sub-account manager, a loan or a token.
MOVER_WORDS = ["withdraw", "transfer", "apikey", "api-key", "api_key", "subaccount", "sub-account",
               "sub_account", "subuser", "sub-user", "gift", "convert", "loan", "borrow", "repay", "lending",
               "pledge", "block", "rfq", "pay", "p2p", "token", "listenkey", "userdatastream", "bullet"]

RULES = [  # first match wins; the most dangerous class for each word
    ("withdraw", "withdraw"), ("gift", "withdraw"), ("p2p", "withdraw"),
    ("apikey", "admin"), ("api-key", "admin"), ("api_key", "admin"), ("token", "admin"),
    ("listenkey", "admin"), ("userdatastream", "admin"), ("bullet", "admin"),
    ("loan", "borrow"), ("borrow", "borrow"), ("repay", "borrow"), ("lending", "borrow"), ("pledge", "borrow"),
    ("transfer", "transfer"), ("convert", "transfer"), ("pay", "transfer"), ("block", "transfer"),
    ("rfq", "transfer"),
    ("subaccount", "admin"), ("sub-account", "admin"), ("sub_account", "admin"), ("subuser", "admin"),
    ("sub-user", "admin"),
]


def words(path):
    return path.lower().replace("/", " ")


def klass(path):
    name = words(path)
    for word, cls in RULES:
        if word in name:
            return cls
    return None


def main():
    snap = json.load(open(SNAPSHOT))
    rows = set()
    for e in snap["endpoints"]:
        if e.get("host") not in HOSTS.get(e["exchange"], ()):
            continue
        if e["method"] not in ("GET", "POST", "PUT", "DELETE"):
            continue
        path = re.sub(r"\{[^}]+\}", "{}", e["path"])
        if not any(w in words(path) for w in MOVER_WORDS):
            continue
        rows.add((e["exchange"], e["method"], path, klass(path)))
    print("# exchange\tmethod\tpath\tclass  (made by tools/fund_movers.py from ccxt's endpoint snapshot)")
    for r in sorted(rows):
        print("\t".join(r))


if __name__ == "__main__":
    main()
