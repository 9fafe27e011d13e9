-- Claims on the messages of a bounce mailbox (bounce.imap_url), by UIDVALIDITY and UID
-- (RFC 3501 §2.3.1.1): any number of pollers process each message once.
CREATE TABLE mailbox_claims (
    mailbox text NOT NULL,
    uid_validity bigint NOT NULL,
    uid bigint NOT NULL,
    claimed_until timestamptz NOT NULL,
    done_at timestamptz,
    PRIMARY KEY (mailbox, uid_validity, uid)
);
