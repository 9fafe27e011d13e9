-- record_signups: a group of sign-ups (the server's group commit) written as sets. The new
-- addresses among them (most sign-ups) take one INSERT per table for the whole group; each of
-- the rest (an address already known, or one given twice in the group) goes through
-- record_signup, one by one, after the new ones. Measured on 2 cores (BENCHMARKS.md): calling
-- record_signup once per sign-up spent most of PostgreSQL's time on work done per statement
-- (executor start-up, planning, the CHECK constraints read back from the catalog), five
-- statements a sign-up.
--
-- Same answers as record_signup called for each sign-up in address order, with one difference
-- nobody can see from outside: a new address's rows are written before a known address's.
-- Sign-up n (1-based, the position in the arrays) asks for the lists p_list_ids[i] where
-- p_list_of[i] = n. Returns one row (n, outcome) per sign-up.
CREATE FUNCTION record_signups(
    p_ids uuid[], p_emails text[], p_normalized text[], p_names text[], p_states text[],
    p_resend_after_seconds float8[], p_token_hashes bytea[], p_confirm_ttl_seconds float8[],
    p_nonces text[], p_sources text[], p_ips text[], p_user_agents text[],
    p_consent_texts text[], p_consent_versions text[],
    p_list_of int4[], p_list_ids uuid[], p_list_slugs text[])
RETURNS TABLE (n int, outcome text)
LANGUAGE plpgsql AS $$
DECLARE
    v_new int[];
    v_n int;
BEGIN
    -- New addresses in address order (so two groups never wait on each other's addresses in
    -- opposite orders); one given twice is inserted once, its second sign-up goes below.
    WITH r AS (
        SELECT u.*, u.ord::int AS i
        FROM unnest(p_ids, p_emails, p_normalized, p_names, p_states, p_token_hashes,
                    p_confirm_ttl_seconds, p_nonces, p_sources, p_ips, p_user_agents,
                    p_consent_texts, p_consent_versions)
             WITH ORDINALITY AS u(id, email, normalized, name, state, token_hash, confirm_ttl,
                                  nonce, source, ip, user_agent, consent_text, consent_version,
                                  ord)),
    added AS (
        INSERT INTO subscribers (id, email, email_normalized, name, us_state, last_confirmation_at)
        SELECT r.id, r.email, r.normalized, r.name, r.state, now()
        FROM r ORDER BY r.normalized, r.i
        ON CONFLICT (email_normalized) DO NOTHING
        RETURNING id),
    fresh AS (SELECT r.* FROM r JOIN added USING (id)),
    subscribed AS (
        INSERT INTO subscriptions (subscriber_id, list_id)
        SELECT fresh.id, l.list_id
        FROM fresh JOIN unnest(p_list_of, p_list_ids) AS l(i, list_id) USING (i)
        ON CONFLICT DO NOTHING),
    tokens AS (
        INSERT INTO confirmation_tokens (token_hash, subscriber_id, expires_at)
        SELECT fresh.token_hash, fresh.id, now() + make_interval(secs => fresh.confirm_ttl)
        FROM fresh),
    mails AS (
        INSERT INTO deliveries (kind, subscriber_id, payload)
        SELECT 'confirmation', fresh.id, jsonb_build_object('nonce', fresh.nonce)
        FROM fresh ORDER BY fresh.i),
    consented AS (
        INSERT INTO consent_events
            (subscriber_id, kind, source, ip, user_agent, consent_text, consent_version, lists)
        SELECT fresh.id, 'signup', fresh.source, fresh.ip::inet, fresh.user_agent,
               fresh.consent_text, fresh.consent_version,
               ARRAY(SELECT l.slug FROM unnest(p_list_of, p_list_slugs) AS l(i, slug)
                     WHERE l.i = fresh.i)
        FROM fresh ORDER BY fresh.i)
    SELECT coalesce(array_agg(fresh.i), '{}') INTO v_new FROM fresh;

    RETURN QUERY SELECT f, 'confirmation_queued'::text FROM unnest(v_new) AS f;

    FOR v_n IN
        SELECT u.ord::int FROM unnest(p_normalized) WITH ORDINALITY AS u(normalized, ord)
        WHERE u.ord::int <> ALL (v_new)
        ORDER BY u.normalized, u.ord
    LOOP
        n := v_n;
        outcome := record_signup(
            p_ids[v_n], p_emails[v_n], p_normalized[v_n], p_names[v_n], p_states[v_n],
            p_resend_after_seconds[v_n],
            ARRAY(SELECT l.list_id FROM unnest(p_list_of, p_list_ids) AS l(i, list_id)
                  WHERE l.i = v_n),
            p_token_hashes[v_n], p_confirm_ttl_seconds[v_n],
            jsonb_build_object('nonce', p_nonces[v_n]), p_sources[v_n], p_ips[v_n]::inet,
            p_user_agents[v_n], p_consent_texts[v_n], p_consent_versions[v_n],
            ARRAY(SELECT l.slug FROM unnest(p_list_of, p_list_slugs) AS l(i, slug)
                  WHERE l.i = v_n));
        RETURN NEXT;
    END LOOP;
END
$$;
