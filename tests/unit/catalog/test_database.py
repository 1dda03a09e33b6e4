import sqlite3

import pytest

from search_by_image.catalog.database import connect, transaction

SCHEMA = ["CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)"]


def test_schema_applied_and_idempotent(tmp_path):
    conn = connect(tmp_path, SCHEMA)
    with transaction(conn):
        conn.execute("INSERT INTO notes (text) VALUES ('a')")
    conn.close()
    again = connect(tmp_path, SCHEMA)
    assert again.execute("SELECT text FROM notes").fetchall() == [("a",)]
    assert again.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_failed_transaction_leaves_nothing(tmp_path):
    conn = connect(tmp_path, SCHEMA)
    with pytest.raises(RuntimeError), transaction(conn):
        conn.execute("INSERT INTO notes (text) VALUES ('half')")
        raise RuntimeError("crash midway")
    assert conn.execute("SELECT count(*) FROM notes").fetchone()[0] == 0


def test_readonly_refuses_writes(tmp_path):
    connect(tmp_path, SCHEMA).close()
    reader = connect(tmp_path, readonly=True)
    with pytest.raises(sqlite3.OperationalError):
        reader.execute("INSERT INTO notes (text) VALUES ('x')")
