-- 0003 reconciliation (SQLite). Same tables, constraints and indexes as the
-- PostgreSQL file: the daily check of the shop's payments and refunds against
-- WeChat Pay's trade bill. A run is one reconciliation of one
-- bill date; its report is its drift rows. A run is shown as a report only once
-- COMPLETE, which it becomes in one transaction with its last counts, so a
-- failed or interrupted run never passes for a finished one. Each attempt of a
-- run has its number: an attempt that timed out but still writes (a worker that
-- lost touch) writes rows of its own number, which nothing reads.

CREATE TABLE reconciliation_runs (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    bill_date          TEXT        NOT NULL, -- yyyy-MM-DD, a day of Beijing time
    workflow_id        TEXT        NOT NULL,
    workflow_run_id    TEXT        NOT NULL,
    status             TEXT        NOT NULL,
    attempt            INTEGER     NOT NULL DEFAULT 0, -- the attempt whose rows count
    bill_state         TEXT        NOT NULL DEFAULT '',
    bill_sha1          TEXT        NOT NULL DEFAULT '',
    bill_rows          INTEGER     NOT NULL DEFAULT 0,
    wechat_payments    INTEGER     NOT NULL DEFAULT 0,
    wechat_payment_fen INTEGER     NOT NULL DEFAULT 0,
    wechat_refunds     INTEGER     NOT NULL DEFAULT 0,
    wechat_refund_fen  INTEGER     NOT NULL DEFAULT 0,
    wechat_fee_milli_fen INTEGER   NOT NULL DEFAULT 0, -- fees, thousandths of a fen (the bill gives 5 decimals of yuan)
    shop_payments      INTEGER     NOT NULL DEFAULT 0,
    shop_payment_fen   INTEGER     NOT NULL DEFAULT 0,
    shop_refunds       INTEGER     NOT NULL DEFAULT 0,
    shop_refund_fen    INTEGER     NOT NULL DEFAULT 0,
    matched_payments   INTEGER     NOT NULL DEFAULT 0,
    matched_refunds    INTEGER     NOT NULL DEFAULT 0,
    drift              INTEGER     NOT NULL DEFAULT 0, -- unexplained
    explained          INTEGER     NOT NULL DEFAULT 0, -- listed apart (stray payments, rows in another day's bill)
    error              TEXT        NOT NULL DEFAULT '',
    started_at         TIMESTAMP NOT NULL,
    updated_at         TIMESTAMP NOT NULL,
    finished_at        TIMESTAMP,
    CONSTRAINT reconciliation_runs_workflow_run_id_key UNIQUE (workflow_run_id),
    CONSTRAINT reconciliation_runs_status_check CHECK (status IN ('RUNNING', 'COMPLETE', 'FAILED', 'SUPERSEDED'))
);
-- A date's runs, newest first; at most one COMPLETE report per date.
CREATE INDEX reconciliation_runs_bill_date_idx ON reconciliation_runs (bill_date, id);
CREATE UNIQUE INDEX reconciliation_runs_one_report_idx ON reconciliation_runs (bill_date) WHERE status = 'COMPLETE';

CREATE TABLE reconciliation_drifts (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id         INTEGER     NOT NULL REFERENCES reconciliation_runs (id) ON DELETE CASCADE,
    attempt        INTEGER     NOT NULL,
    kind           TEXT        NOT NULL,
    explained      INTEGER     NOT NULL, -- 0 or 1
    transaction_id TEXT        NOT NULL DEFAULT '',
    out_trade_no   TEXT        NOT NULL DEFAULT '',
    out_refund_no  TEXT        NOT NULL DEFAULT '',
    wechat_fen     INTEGER,              -- WeChat's amount, NULL when WeChat has none
    shop_fen       INTEGER,              -- the shop's amount, NULL when the shop has none
    wechat_time    TIMESTAMP,
    order_status   TEXT        NOT NULL DEFAULT '',
    note           TEXT        NOT NULL DEFAULT '',
    resolved       INTEGER     NOT NULL DEFAULT 0 -- asked WeChat about it (shop-side rows)
);
CREATE INDEX reconciliation_drifts_run_id_idx ON reconciliation_drifts (run_id, attempt, id);

-- The bill's rows while a run compares them: written as the download is
-- read, joined with payments and refunds, removed when the run ends.
CREATE TABLE reconciliation_bill_rows (
    run_id         INTEGER     NOT NULL REFERENCES reconciliation_runs (id) ON DELETE CASCADE,
    attempt        INTEGER     NOT NULL,
    line           INTEGER     NOT NULL,
    kind           TEXT        NOT NULL, -- PAYMENT | REFUND
    transaction_id TEXT        NOT NULL,
    out_trade_no   TEXT        NOT NULL,
    out_refund_no  TEXT        NOT NULL DEFAULT '',
    amount_fen     INTEGER     NOT NULL,
    status         TEXT        NOT NULL DEFAULT '', -- a refund's, as the bill writes it
    traded_at      TIMESTAMP NOT NULL,
    PRIMARY KEY (run_id, attempt, line)
);
CREATE INDEX reconciliation_bill_rows_transaction_idx ON reconciliation_bill_rows (run_id, attempt, kind, transaction_id);
CREATE INDEX reconciliation_bill_rows_refund_idx ON reconciliation_bill_rows (run_id, attempt, out_refund_no);

-- A day's payments (by WeChat's success time) and refunds (by when they
-- were asked for).
CREATE INDEX payments_success_time_idx ON payments (success_time);
CREATE INDEX refunds_created_at_idx ON refunds (created_at);
