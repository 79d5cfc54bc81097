"""SQLite schema for the single-node ledger. Times are clock milliseconds since the epoch."""

from __future__ import annotations

import sqlite3

SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (
    key        TEXT PRIMARY KEY,
    settled    INTEGER NOT NULL DEFAULT 0,
    reserved   INTEGER NOT NULL DEFAULT 0,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS counters_expiry ON counters (expires_at);

CREATE TABLE IF NOT EXISTS reservations (
    id         TEXT PRIMARY KEY,
    state      TEXT NOT NULL CHECK (state IN ('active', 'expired')),
    expires_at INTEGER NOT NULL,
    charges    TEXT NOT NULL,
    recorded   INTEGER NOT NULL DEFAULT 0  -- usage records of the request stored so far
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS reservations_expiry ON reservations (state, expires_at);

CREATE TABLE IF NOT EXISTS usage (
    time_ms          INTEGER NOT NULL,
    request_id       TEXT NOT NULL,
    attempt          INTEGER NOT NULL,
    team             TEXT NOT NULL,
    key_id           TEXT NOT NULL,
    requested_model  TEXT NOT NULL,
    provider         TEXT NOT NULL,
    provider_model   TEXT NOT NULL,
    input_tokens     INTEGER NOT NULL,
    output_tokens    INTEGER NOT NULL,
    cached_read      INTEGER NOT NULL,
    cache_creation   INTEGER NOT NULL,
    reasoning        INTEGER NOT NULL,
    estimated        INTEGER NOT NULL,
    cost_nanos       INTEGER,            -- NULL: no price known
    status           INTEGER NOT NULL,
    outcome          TEXT NOT NULL,
    latency_s        REAL NOT NULL,
    ttft_s           REAL,
    UNIQUE (time_ms, request_id, attempt)
);
"""


def upgrade(conn: sqlite3.Connection) -> None:
    """Brings a ledger file made by an earlier version up to SCHEMA, which made the rest.

    Its reservations gain their count of records (one in flight then waits RECORD_WAIT_S
    before its release). Its usage table is not rewritten when a worker starts: it keeps
    its key by request id, whose random order costs each record a page write of its own,
    and the time index that key needed beside it."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(reservations)")}
    if "recorded" not in columns:
        conn.execute("ALTER TABLE reservations ADD COLUMN recorded INTEGER NOT NULL DEFAULT 0")


GROUP_COLUMNS = {
    "team": "team",
    "model": "requested_model",
    "provider_model": "provider_model",
    "provider": "provider",
    "key": "key_id",
}
