-- Staff accounts that resist takeover: second factors (TOTP, recovery codes, passkeys) and
-- sessions a member can see and end.

ALTER TABLE staff
    -- the TOTP secret (RFC 6238, 20 bytes) sealed under a key derived from security.secret_key
    -- and bound to the account (domain::second_factor); NULL: no TOTP
    ADD COLUMN totp_secret text,
    ADD COLUMN totp_enrolled_at timestamptz,
    -- the last time step (Unix seconds / 30) whose code was accepted: a code of this step or an
    -- earlier one is refused, so a code works once
    ADD COLUMN totp_last_step bigint,
    -- a secret shown for enrolment and not yet confirmed with a code
    ADD COLUMN totp_pending_secret text,
    ADD COLUMN totp_pending_at timestamptz;

-- One-time recovery codes: only their SHA-256.
CREATE TABLE staff_recovery_codes (
    staff_id uuid NOT NULL REFERENCES staff (id) ON DELETE CASCADE,
    hash bytea NOT NULL CHECK (length(hash) = 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    used_at timestamptz,
    PRIMARY KEY (staff_id, hash)
);

-- Passkeys (WebAuthn credentials), several per account, each with a name.
CREATE TABLE staff_passkeys (
    id uuid PRIMARY KEY,
    staff_id uuid NOT NULL REFERENCES staff (id) ON DELETE CASCADE,
    name text NOT NULL,
    credential_id bytea NOT NULL UNIQUE,
    -- the credential as webauthn-rs serialises it (public key, counter, flags)
    credential jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz
);
CREATE INDEX staff_passkeys_by_staff ON staff_passkeys (staff_id);

-- A WebAuthn ceremony under way (registration or sign-in): its state, for the SHA-256 of a
-- random id the browser holds in a cookie. Good for five minutes, used once.
CREATE TABLE webauthn_ceremonies (
    id_hash bytea PRIMARY KEY CHECK (length(id_hash) = 32),
    staff_id uuid REFERENCES staff (id) ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind IN ('register', 'authenticate')),
    state jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE staff_sessions
    -- what the account page names a session by (the id itself is known to its browser only)
    ADD COLUMN id uuid NOT NULL DEFAULT gen_random_uuid(),
    -- how the first factor was given: password, passkey or oidc
    ADD COLUMN method text NOT NULL DEFAULT 'password'
        CHECK (method IN ('password', 'passkey', 'oidc', 'setup')),
    -- when this session gave a second factor (or a method that counts as two); NULL: not yet
    ADD COLUMN second_factor_at timestamptz,
    ADD COLUMN ip inet,
    ADD COLUMN user_agent text CHECK (length(user_agent) <= 512);
CREATE UNIQUE INDEX staff_sessions_by_id ON staff_sessions (id);

-- The devices a member has signed in from: the SHA-256 of a long-lived random cookie. A sign-in
-- from a device not listed sends the member a notice.
CREATE TABLE staff_devices (
    staff_id uuid NOT NULL REFERENCES staff (id) ON DELETE CASCADE,
    hash bytea NOT NULL CHECK (length(hash) = 32),
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (staff_id, hash)
);
