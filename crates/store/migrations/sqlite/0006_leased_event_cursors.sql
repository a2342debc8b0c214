-- A consumer of the platform-event log runs on one replica at a time: it leases its cursor,
-- and a holder that stops renewing loses it once `locked_until` has passed.
ALTER TABLE event_cursors ADD COLUMN owner TEXT;
ALTER TABLE event_cursors ADD COLUMN locked_until TEXT;
