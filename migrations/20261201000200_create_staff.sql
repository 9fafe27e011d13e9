-- Staff accounts for the admin area. Passwords as argon2id PHC strings.
CREATE TABLE staff (
    id uuid PRIMARY KEY,
    email text NOT NULL,
    email_normalized text NOT NULL UNIQUE,
    role text NOT NULL CHECK (role IN ('admin', 'editor')),
    password_hash text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_login_at timestamptz
);

-- Sessions: only the SHA-256 of the session id (the cookie's value) is stored.
CREATE TABLE staff_sessions (
    id_hash bytea PRIMARY KEY CHECK (length(id_hash) = 32),
    staff_id uuid NOT NULL REFERENCES staff (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX staff_sessions_by_staff ON staff_sessions (staff_id);

-- Failed logins, for throttling per account and per client IP.
CREATE TABLE staff_login_failures (
    email_normalized text NOT NULL,
    ip inet,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX staff_login_failures_by_email ON staff_login_failures (email_normalized, at);
CREATE INDEX staff_login_failures_by_ip ON staff_login_failures (ip, at);
