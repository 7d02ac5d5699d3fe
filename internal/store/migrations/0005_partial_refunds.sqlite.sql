-- 0005 partial_refunds (SQLite). Same columns, constraints and indexes as the
-- PostgreSQL file (which says why). SQLite cannot add a CHECK or change a
-- UNIQUE constraint of an existing table: orders.refunded_fen's check rides
-- on its column, and stock_ledger is rebuilt with every column, constraint
-- and index 0001 gave it, plus refund_no. (Nothing references stock_ledger,
-- so dropping the old table breaks no foreign key; its ids are kept, and the
-- rename carries the AUTOINCREMENT sequence.)

ALTER TABLE orders ADD COLUMN refunded_fen INTEGER NOT NULL DEFAULT 0
    CONSTRAINT orders_refunded_fen_check CHECK (refunded_fen >= 0 AND refunded_fen <= total_fen);
UPDATE orders SET refunded_fen = MIN(total_fen, (SELECT COALESCE(SUM(r.refund_fen), 0) FROM refunds r
    WHERE r.order_no = orders.order_no AND r.transaction_id = orders.transaction_id AND r.status = 'SUCCESS'))
    WHERE transaction_id <> '';

ALTER TABLE refunds ADD COLUMN items TEXT NOT NULL DEFAULT '';

CREATE TABLE stock_ledger_0005 (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    order_no   TEXT      NOT NULL REFERENCES orders (order_no),
    product_id INTEGER   NOT NULL REFERENCES products (id),
    kind       TEXT      NOT NULL,
    quantity   INTEGER   NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    refund_no  TEXT      NOT NULL DEFAULT '',
    CONSTRAINT stock_ledger_order_no_product_id_kind_refund_no_key UNIQUE (order_no, product_id, kind, refund_no),
    CONSTRAINT stock_ledger_kind_check CHECK (kind IN ('DEDUCT', 'RESTORE')),
    CONSTRAINT stock_ledger_quantity_check CHECK (quantity > 0)
);
INSERT INTO stock_ledger_0005 (id, order_no, product_id, kind, quantity, created_at, refund_no)
    SELECT id, order_no, product_id, kind, quantity, created_at, '' FROM stock_ledger ORDER BY id;
DROP TABLE stock_ledger;
ALTER TABLE stock_ledger_0005 RENAME TO stock_ledger;
CREATE INDEX stock_ledger_product_id_idx ON stock_ledger (product_id);

CREATE TABLE after_sales (
    id                     TEXT      NOT NULL PRIMARY KEY, -- <order_no>-AS<n>
    order_no               TEXT      NOT NULL REFERENCES orders (order_no),
    user_id                INTEGER   NOT NULL,
    type                   TEXT      NOT NULL,
    status                 TEXT      NOT NULL,
    items                  TEXT      NOT NULL DEFAULT '[]', -- JSON: [{product_id, quantity, …}]
    reason                 TEXT      NOT NULL DEFAULT '',
    photos                 TEXT      NOT NULL DEFAULT '[]', -- JSON: [url, …]
    note                   TEXT      NOT NULL DEFAULT '',
    return_express_company TEXT      NOT NULL DEFAULT '',
    return_tracking_no     TEXT      NOT NULL DEFAULT '',
    out_refund_no          TEXT      NOT NULL DEFAULT '',
    refund_fen             INTEGER   NOT NULL DEFAULT 0,
    created_at             TIMESTAMP NOT NULL,
    updated_at             TIMESTAMP NOT NULL,
    deadline               TIMESTAMP, -- when the step it waits in times out (NULL: none)
    CONSTRAINT after_sales_type_check CHECK (type IN ('refund_only', 'return_and_refund')),
    CONSTRAINT after_sales_refund_fen_check CHECK (refund_fen >= 0)
);
CREATE INDEX after_sales_order_no_idx ON after_sales (order_no);
CREATE INDEX after_sales_status_idx ON after_sales (status, created_at, id);
