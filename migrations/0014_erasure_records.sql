-- What `erase` leaves behind so that later writes cannot undo it: the subject's keyed
-- fingerprints (`user` and `value` purposes, under every key of the operator's ring; never the
-- id) and when. Every write checks them in the transaction of its COPY and leaves out the
-- logins of a subject erased after they were sent (src/sink/postgres/erased.rs); erasing the
-- same subject again moves the time forward.
CREATE TABLE IF NOT EXISTS erased_subjects (
    fingerprint text PRIMARY KEY,
    erased_at   timestamptz NOT NULL DEFAULT now()
);
