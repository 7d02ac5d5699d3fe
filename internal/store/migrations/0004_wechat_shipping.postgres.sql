-- 0004 wechat_shipping (postgres): where an order goes, as wx.chooseAddress gives
-- it (the free-text address column stays: older clients send it, and a
-- structured address is written out there too), and how it was shipped —
-- logistics type, packages and item description, as reported to WeChat's
-- order shipping management (JSON; '' for orders shipped without them).
-- SQLite adds one column per ALTER TABLE statement, as PostgreSQL may.

ALTER TABLE orders ADD COLUMN ship_to_name        TEXT NOT NULL DEFAULT '';
ALTER TABLE orders ADD COLUMN ship_to_phone       TEXT NOT NULL DEFAULT '';
ALTER TABLE orders ADD COLUMN ship_to_province    TEXT NOT NULL DEFAULT '';
ALTER TABLE orders ADD COLUMN ship_to_city        TEXT NOT NULL DEFAULT '';
ALTER TABLE orders ADD COLUMN ship_to_district    TEXT NOT NULL DEFAULT '';
ALTER TABLE orders ADD COLUMN ship_to_detail      TEXT NOT NULL DEFAULT '';
ALTER TABLE orders ADD COLUMN ship_to_postal_code TEXT NOT NULL DEFAULT '';
ALTER TABLE orders ADD COLUMN shipment            TEXT NOT NULL DEFAULT '';
