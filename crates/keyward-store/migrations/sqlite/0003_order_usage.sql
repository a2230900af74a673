-- Cumulative order notional per key per UTC day (micro-units of the quote
-- currency), for the per-day cap of order guards.
CREATE TABLE order_usage (
    key_id  TEXT NOT NULL,
    day     INTEGER NOT NULL,
    used    INTEGER NOT NULL,
    PRIMARY KEY (key_id, day)
) STRICT;
