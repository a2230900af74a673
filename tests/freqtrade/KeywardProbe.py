"""A minimal strategy for trying Freqtrade through keyward's signing proxy.

It signals an entry on every candle, so the bot enters at once (one trade,
max_open_trades 1), with a limit order 20 % below the market that will not
fill: it rests as NEW until it is cancelled. It never exits by itself.
"""
from datetime import datetime

from pandas import DataFrame

from freqtrade.strategy import IStrategy


class KeywardProbe(IStrategy):
    INTERFACE_VERSION = 3
    timeframe = "5m"
    startup_candle_count = 20
    process_only_new_candles = False
    minimal_roi = {"0": 100}  # never take profit
    stoploss = -0.99  # never stop out
    use_exit_signal = False
    order_types = {"entry": "limit", "exit": "limit", "stoploss": "limit", "stoploss_on_exchange": False}

    def populate_indicators(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        dataframe["sma"] = dataframe["close"].rolling(10).mean()  # needs real candles
        return dataframe

    def populate_entry_trend(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        dataframe["enter_long"] = 1  # enter at once
        return dataframe

    def populate_exit_trend(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        dataframe["exit_long"] = 0
        return dataframe

    def custom_entry_price(self, pair: str, trade, current_time: datetime, proposed_rate: float,
                           entry_tag: str | None, side: str, **kwargs) -> float:
        # 20 % below the market: the limit order rests on the book
        # (config: custom_price_max_distance_ratio 0.25 lets it through).
        return proposed_rate * 0.8
