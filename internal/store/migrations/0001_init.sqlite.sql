-- 0001 init (SQLite). Same tables and constraints as the PostgreSQL file.
-- Time columns are declared TIMESTAMP: modernc.org/sqlite parses such columns back
-- into time.Time. INTEGER PRIMARY KEY AUTOINCREMENT never reuses an id.

CREATE TABLE users (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    open_id    TEXT      NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT users_open_id_key UNIQUE (open_id),
    CONSTRAINT users_open_id_check CHECK (open_id <> '')
);

CREATE TABLE products (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT      NOT NULL,
    price_fen  INTEGER   NOT NULL,
    stock      INTEGER   NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT products_price_fen_check CHECK (price_fen >= 0),
    CONSTRAINT products_stock_check CHECK (stock >= 0)
);

CREATE TABLE orders (
    order_no       TEXT      NOT NULL PRIMARY KEY,
    user_id        INTEGER   NOT NULL REFERENCES users (id),
    status         TEXT      NOT NULL,
    total_fen      INTEGER   NOT NULL,
    address        TEXT      NOT NULL DEFAULT '',
    pay_deadline   TIMESTAMP NOT NULL,
    prepay_id      TEXT      NOT NULL DEFAULT '',
    transaction_id TEXT      NOT NULL DEFAULT '',
    paid_at        TIMESTAMP,
    closed_at      TIMESTAMP,
    flag           TEXT      NOT NULL DEFAULT '',
    created_at     TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at     TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT orders_total_fen_check CHECK (total_fen >= 0),
    CONSTRAINT orders_status_check CHECK (status IN ('PENDING', 'PAID', 'SHIPPED', 'COMPLETED',
        'CLOSED', 'REFUNDING', 'REFUNDED', 'REFUND_FAILED'))
);
CREATE INDEX orders_user_id_created_at_idx ON orders (user_id, created_at DESC, order_no DESC);
CREATE INDEX orders_flagged_idx ON orders (updated_at) WHERE flag <> '';

CREATE TABLE order_items (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    order_no       TEXT    NOT NULL REFERENCES orders (order_no) ON DELETE CASCADE,
    product_id     INTEGER NOT NULL REFERENCES products (id),
    name           TEXT    NOT NULL,
    unit_price_fen INTEGER NOT NULL,
    quantity       INTEGER NOT NULL,
    CONSTRAINT order_items_order_no_product_id_key UNIQUE (order_no, product_id),
    CONSTRAINT order_items_unit_price_fen_check CHECK (unit_price_fen >= 0),
    CONSTRAINT order_items_quantity_check CHECK (quantity > 0)
);

CREATE TABLE stock_ledger (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    order_no   TEXT      NOT NULL REFERENCES orders (order_no),
    product_id INTEGER   NOT NULL REFERENCES products (id),
    kind       TEXT      NOT NULL,
    quantity   INTEGER   NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT stock_ledger_order_no_product_id_kind_key UNIQUE (order_no, product_id, kind),
    CONSTRAINT stock_ledger_kind_check CHECK (kind IN ('DEDUCT', 'RESTORE')),
    CONSTRAINT stock_ledger_quantity_check CHECK (quantity > 0)
);
CREATE INDEX stock_ledger_product_id_idx ON stock_ledger (product_id);

CREATE TABLE payments (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    transaction_id TEXT      NOT NULL,
    order_no       TEXT      NOT NULL,
    amount_fen     INTEGER   NOT NULL,
    payer_open_id  TEXT      NOT NULL DEFAULT '',
    app_id         TEXT      NOT NULL DEFAULT '',
    mch_id         TEXT      NOT NULL DEFAULT '',
    trade_state    TEXT      NOT NULL DEFAULT '',
    success_time   TIMESTAMP,
    created_at     TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT payments_transaction_id_key UNIQUE (transaction_id),
    CONSTRAINT payments_amount_fen_check CHECK (amount_fen >= 0)
);
CREATE INDEX payments_order_no_idx ON payments (order_no);

CREATE TABLE refunds (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    out_refund_no  TEXT      NOT NULL,
    order_no       TEXT      NOT NULL,
    transaction_id TEXT      NOT NULL DEFAULT '',
    refund_fen     INTEGER   NOT NULL,
    total_fen      INTEGER   NOT NULL,
    reason         TEXT      NOT NULL DEFAULT '',
    status         TEXT      NOT NULL,
    refund_id      TEXT      NOT NULL DEFAULT '',
    created_at     TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at     TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT refunds_out_refund_no_key UNIQUE (out_refund_no),
    CONSTRAINT refunds_total_fen_check CHECK (total_fen >= 0),
    CONSTRAINT refunds_refund_fen_check CHECK (refund_fen > 0 AND refund_fen <= total_fen)
);
CREATE INDEX refunds_order_no_idx ON refunds (order_no);
