-- Which key each key id is. A masking key's fingerprint (HMAC-SHA256 of a fixed label under the
-- key itself: it identifies the key and reveals nothing about it) is recorded the first time the
-- key masks a row. `run` and `check` refuse a key ring whose key for a recorded id has another
-- fingerprint: a replaced key would otherwise make masks that never match the old ones, and
-- duplicate detection would break without an error (docs/recovery.md).
CREATE TABLE IF NOT EXISTS mask_key_fingerprints (
    key_id      text PRIMARY KEY,
    fingerprint text NOT NULL,
    first_used  timestamptz NOT NULL DEFAULT now()
);
