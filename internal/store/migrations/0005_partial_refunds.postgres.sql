-- 0005 partial_refunds (PostgreSQL): an order refunded in parts (issue 18).
--
-- orders.refunded_fen is what WeChat returned of the order's payment: the
-- sum of its SUCCESS refunds, recounted from the refunds rows each time one
-- settles (so a retried settlement never counts twice). Orders refunded
-- before this migration get it from their refunds.
--
-- refunds.items is the refund's goods as JSON ('' for a refund of the whole
-- order before this migration, and for a stray payment's): a refund's goods
-- are written and read with the refund, whole, as WeChat's goods_detail is;
-- nothing asks "which refunds hold product 7", so a table of its own would
-- only add a join.
--
-- stock_ledger.refund_no: a part refund puts back its own items, once per
-- refund, so the unique key grows by the refund. DEDUCT rows and the RESTORE
-- rows of whole-order refunds keep '' (they stay valid: one per order and
-- product, as before).
--
-- after_sales: the after-sale requests of orders, one row per request,
-- written by the order's workflow at each step (upserted by id); the admin's
-- list of open after-sales reads it.

ALTER TABLE orders ADD COLUMN refunded_fen BIGINT NOT NULL DEFAULT 0;
UPDATE orders SET refunded_fen = LEAST(total_fen, (SELECT COALESCE(SUM(r.refund_fen), 0) FROM refunds r
    WHERE r.order_no = orders.order_no AND r.transaction_id = orders.transaction_id AND r.status = 'SUCCESS'))
    WHERE transaction_id <> '';
ALTER TABLE orders ADD CONSTRAINT orders_refunded_fen_check CHECK (refunded_fen >= 0 AND refunded_fen <= total_fen);

ALTER TABLE refunds ADD COLUMN items TEXT NOT NULL DEFAULT '';

ALTER TABLE stock_ledger ADD COLUMN refund_no TEXT NOT NULL DEFAULT '';
ALTER TABLE stock_ledger DROP CONSTRAINT stock_ledger_order_no_product_id_kind_key;
-- At most one deduction per order and product, and one restoration per
-- order, product and refund ('' = the whole order's).
ALTER TABLE stock_ledger ADD CONSTRAINT stock_ledger_order_no_product_id_kind_refund_no_key
    UNIQUE (order_no, product_id, kind, refund_no);

CREATE TABLE after_sales (
    id                     TEXT        PRIMARY KEY, -- <order_no>-AS<n>
    order_no               TEXT        NOT NULL REFERENCES orders (order_no),
    user_id                BIGINT      NOT NULL,
    type                   TEXT        NOT NULL,
    status                 TEXT        NOT NULL,
    items                  TEXT        NOT NULL DEFAULT '[]', -- JSON: [{product_id, quantity, …}]
    reason                 TEXT        NOT NULL DEFAULT '',
    photos                 TEXT        NOT NULL DEFAULT '[]', -- JSON: [url, …]
    note                   TEXT        NOT NULL DEFAULT '',
    return_express_company TEXT        NOT NULL DEFAULT '',
    return_tracking_no     TEXT        NOT NULL DEFAULT '',
    out_refund_no          TEXT        NOT NULL DEFAULT '',
    refund_fen             BIGINT      NOT NULL DEFAULT 0,
    created_at             TIMESTAMPTZ NOT NULL,
    updated_at             TIMESTAMPTZ NOT NULL,
    deadline               TIMESTAMPTZ, -- when the step it waits in times out (NULL: none)
    CONSTRAINT after_sales_type_check CHECK (type IN ('refund_only', 'return_and_refund')),
    CONSTRAINT after_sales_refund_fen_check CHECK (refund_fen >= 0)
);
CREATE INDEX after_sales_order_no_idx ON after_sales (order_no);
-- The admin's list, by status, oldest first.
CREATE INDEX after_sales_status_idx ON after_sales (status, created_at, id);
