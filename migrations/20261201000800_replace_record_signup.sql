-- record_signup, with less written for a new address (most sign-ups): its row is inserted with
-- last_confirmation_at already set, instead of being written a second time by an UPDATE, and
-- its pending subscriptions are not counted (a new address always gets a confirmation). An
-- address already known takes the same steps as before. Same signature, same answers.
CREATE OR REPLACE FUNCTION record_signup(
    p_id uuid, p_email text, p_normalized text, p_name text, p_state text,
    p_resend_after_seconds float8, p_list_ids uuid[],
    p_token_hash bytea, p_confirm_ttl_seconds float8, p_payload jsonb,
    p_source text, p_ip inet, p_user_agent text,
    p_consent_text text, p_consent_version text, p_list_slugs text[])
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_id uuid;
    v_status text;
    v_recently_sent boolean;
    v_pending bigint;
    v_outcome text;
BEGIN
    INSERT INTO subscribers (id, email, email_normalized, name, us_state, last_confirmation_at)
    VALUES (p_id, p_email, p_normalized, p_name, p_state, now())
    ON CONFLICT (email_normalized) DO UPDATE SET updated_at = now()
    RETURNING id, status,
              last_confirmation_at IS NOT NULL
                  AND last_confirmation_at > now() - make_interval(secs => p_resend_after_seconds)
    INTO v_id, v_status, v_recently_sent;

    IF v_id = p_id THEN
        -- a new address (p_id is fresh for each call): pending, so its confirmation is due,
        -- and last_confirmation_at was set by the insert above
        INSERT INTO subscriptions (subscriber_id, list_id)
        SELECT v_id, unnest(p_list_ids)
        ON CONFLICT DO NOTHING;
        INSERT INTO confirmation_tokens (token_hash, subscriber_id, expires_at)
        VALUES (p_token_hash, v_id, now() + make_interval(secs => p_confirm_ttl_seconds));
        INSERT INTO deliveries (kind, subscriber_id, payload)
        VALUES ('confirmation', v_id, p_payload);
        v_outcome := 'confirmation_queued';
    ELSE
        WITH wanted AS (
            INSERT INTO subscriptions (subscriber_id, list_id)
            SELECT v_id, unnest(p_list_ids)
            ON CONFLICT (subscriber_id, list_id) DO UPDATE
                SET status = 'pending', updated_at = now()
                WHERE subscriptions.status = 'unsubscribed'
            RETURNING 1)
        SELECT (SELECT count(*) FROM wanted)
             + (SELECT count(*) FROM subscriptions WHERE subscriber_id = v_id AND status = 'pending')
        INTO v_pending;

        IF v_status = 'confirmed' AND v_pending = 0 THEN
            v_outcome := 'nothing_to_confirm';
        ELSIF v_recently_sent THEN
            v_outcome := 'throttled';
        ELSE
            INSERT INTO confirmation_tokens (token_hash, subscriber_id, expires_at)
            VALUES (p_token_hash, v_id, now() + make_interval(secs => p_confirm_ttl_seconds));
            INSERT INTO deliveries (kind, subscriber_id, payload)
            VALUES ('confirmation', v_id, p_payload);
            UPDATE subscribers SET last_confirmation_at = now() WHERE id = v_id;
            v_outcome := 'confirmation_queued';
        END IF;
    END IF;

    INSERT INTO consent_events
        (subscriber_id, kind, source, ip, user_agent, consent_text, consent_version, lists)
    VALUES (v_id, 'signup', p_source, p_ip, p_user_agent, p_consent_text, p_consent_version,
            p_list_slugs);
    RETURN v_outcome;
END
$$;
