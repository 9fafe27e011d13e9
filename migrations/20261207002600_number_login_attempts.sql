-- A login is counted as a failure before its password is checked (issue 26), so concurrent
-- guesses see each other; the row is removed again when the attempt turns out not to be a
-- failure (the right password, or throttled before any check). Each row needs its own id.
-- `ip` now holds the client's key: an IPv4 address, or an IPv6 network of
-- server.ipv6_limit_prefix bits.
ALTER TABLE staff_login_failures ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY;
