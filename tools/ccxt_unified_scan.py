#!/usr/bin/env python3
"""Semi-automatic map of ccxt unified methods -> REST endpoints.

For each exchange and unified method, walks the Python source (ast) of the
method and of every exchange/base helper it calls (self.<helper>(...)),
collecting calls to implicit API methods (Entry descriptors), each with the
call chain and the enclosing if-conditions, and resolves the implicit method
to method + full path through the exchange's own sign() (as
ccxt_endpoints.py does). Output (JSON, stdout): the raw superset, which is
then filtered by hand (ccxt_unified_build.py).
"""
import ast
import inspect
import json
import os
import sys
import urllib.parse

import ccxt
from ccxt.base.types import Entry

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ccxt_endpoints import make, signed_request  # noqa: E402

EXCHANGES = ("binance", "okx", "bybit", "kraken", "kucoin", "bitget", "gate", "deribit", "coinbase", "htx")
UNIFIED = ["load_markets", "fetch_markets", "fetch_currencies", "fetch_time", "fetch_ticker", "fetch_tickers",
           "fetch_order_book", "fetch_ohlcv", "fetch_trades", "fetch_balance", "create_order", "cancel_order",
           "cancel_all_orders", "edit_order", "fetch_order", "fetch_orders", "fetch_open_orders",
           "fetch_closed_orders", "fetch_my_trades", "fetch_positions", "set_leverage", "set_margin_mode",
           "fetch_trading_fee", "fetch_trading_fees", "fetch_deposit_address", "fetch_deposits",
           "fetch_withdrawals", "withdraw", "transfer", "fetch_ledger"]
# Helpers not followed (markets are loaded separately, listed under load_markets).
NO_FOLLOW = {"load_markets", "fetch_markets", "fetch_currencies", "load_time_difference", "sign", "request",
             "fetch2", "fetch", "throttle", "handle_errors"}


def functions(cls):
    """name -> (FunctionDef, source-owner) over the MRO, most derived first."""
    out = {}
    for klass in reversed(inspect.getmro(cls)):
        if klass is object:
            continue
        try:
            src = inspect.getsource(klass)
        except (TypeError, OSError):
            continue
        import textwrap
        tree = ast.parse(textwrap.dedent(src))
        for node in tree.body[0].body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out[node.name] = (node, klass.__name__)
    return out


class Scanner(ast.NodeVisitor):
    def __init__(self):
        self.calls = []  # (name, conditions)
        self.conds = []

    def visit_If(self, node):
        self.visit(node.test)
        self.conds.append(ast.unparse(node.test))
        for n in node.body:
            self.visit(n)
        self.conds.pop()
        self.conds.append("not (%s)" % ast.unparse(node.test))
        for n in node.orelse:
            self.visit(n)
        self.conds.pop()

    def visit_IfExp(self, node):
        self.visit(node.test)
        self.conds.append(ast.unparse(node.test))
        self.visit(node.body)
        self.conds.pop()
        self.conds.append("not (%s)" % ast.unparse(node.test))
        self.visit(node.orelse)
        self.conds.pop()

    def visit_Call(self, node):
        f = node.func
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "self":
            self.calls.append((f.attr, list(self.conds)))
        self.generic_visit(node)


def scan(ex_id):
    ex = make(ex_id)
    cls = type(ex)
    funcs = functions(cls)
    implicit = {}
    for klass in inspect.getmro(cls):
        if klass.__name__ == "ImplicitAPI":
            implicit.update({k: v for k, v in vars(klass).items() if isinstance(v, Entry)})
    result = {}
    for unified in UNIFIED:
        found = []
        seen_funcs = set()

        def go(name, chain, conds):
            if name in seen_funcs or len(chain) > 6:
                return
            seen_funcs.add(name)
            node, owner = funcs[name]
            sc = Scanner()
            for n in node.body:
                sc.visit(n)
            for callee, cc in sc.calls:
                entry = implicit.get(callee)
                if entry is not None:
                    res, err = signed_request(ex, entry.api, entry.method, entry.path)
                    host, path, private = res if res else (None, "?" + entry.path, None)
                    found.append({"implicit": callee, "method": entry.method, "path": path, "host": host,
                                  "private": private, "section": "/".join(entry.api),
                                  "via": " > ".join(chain + [name]) if chain else name,
                                  "conds": conds + cc})
                elif callee in funcs and callee not in NO_FOLLOW and not callee.startswith(("safe_", "parse_")):
                    go(callee, chain + [name], conds + cc)
        if unified == "load_markets":
            for u in ("fetch_markets", "fetch_currencies"):
                if u in funcs:
                    go(u, [], [])
        elif unified in funcs:
            go(unified, [], [])
        result[unified] = found
    return result


def main():
    out = {}
    for ex_id in (sys.argv[1:] or EXCHANGES):
        out[ex_id] = scan(ex_id)
    json.dump(out, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
