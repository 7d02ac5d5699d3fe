-- 0002 fulfilment (SQLite). Same columns as the PostgreSQL file. SQLite adds
-- one column per ALTER TABLE statement.

ALTER TABLE orders ADD COLUMN shipped_at   TIMESTAMP;
ALTER TABLE orders ADD COLUMN completed_at TIMESTAMP;
ALTER TABLE orders ADD COLUMN tracking_no  TEXT NOT NULL DEFAULT '';
