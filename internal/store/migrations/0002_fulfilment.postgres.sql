-- 0002 fulfilment (PostgreSQL): when an order was shipped (and with which
-- tracking number) and when it completed.

ALTER TABLE orders ADD COLUMN shipped_at   TIMESTAMPTZ;
ALTER TABLE orders ADD COLUMN completed_at TIMESTAMPTZ;
ALTER TABLE orders ADD COLUMN tracking_no  TEXT NOT NULL DEFAULT '';
