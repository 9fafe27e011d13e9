-- Sign-ins through the OpenID Provider that have left for the provider and not come back yet.
-- Only hashes: the SHA-256 of the `state` sent to the provider and of the random cookie that
-- ties the sign-in to the browser that started it. The nonce and the PKCE verifier are derived
-- from the state with the secret key, so nothing here lets anyone finish a sign-in. A row is
-- taken (deleted) by the callback that names its state, whatever the outcome, and ignored after
-- 10 minutes; each new sign-in clears the expired ones.
CREATE TABLE oidc_logins (
    state_hash bytea PRIMARY KEY CHECK (length(state_hash) = 32),
    browser_hash bytea NOT NULL CHECK (length(browser_hash) = 32),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX oidc_logins_by_age ON oidc_logins (created_at);
