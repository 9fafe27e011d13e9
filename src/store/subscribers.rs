use sqlx::{PgExecutor, Row};
use uuid::Uuid;

use super::KeyedPool;

pub use crate::domain::Contact;

/// The contact with this normalized address, if any.
pub async fn contact_by_email(
    db: impl PgExecutor<'_> + Copy,
    normalized: &str,
) -> sqlx::Result<Option<Contact>> {
    let id: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM subscribers WHERE email_normalized = $1")
            .bind(normalized)
            .fetch_optional(db)
            .await?;
    match id {
        Some(id) => Ok(read_contacts(db, &[id]).await?.pop()),
        None => Ok(None),
    }
}

/// The read of [`contacts`]: `$1` the subscribers' ids. Public for the test of its plan.
pub const CONTACTS: &str = "SELECT s.id, s.email, s.name, s.status, s.link_version, s.topics,
            ARRAY(SELECT l.slug FROM subscriptions sub JOIN lists l ON l.id = sub.list_id
                  WHERE sub.subscriber_id = s.id AND sub.status = 'confirmed') AS lists
     FROM subscribers s WHERE s.id = ANY ($1)";

/// The subscribers with these ids (those that still exist), each with their confirmed lists.
/// The lists are read through each subscriber's own rows (primary key), never by scanning a
/// list, so this stays fast however big a list is. On a [`KeyedPool`], so its plan is made
/// once per connection.
pub async fn contacts(db: &KeyedPool, ids: &[Uuid]) -> sqlx::Result<Vec<Contact>> {
    read_contacts(db.pool(), ids).await
}

async fn read_contacts(db: impl PgExecutor<'_>, ids: &[Uuid]) -> sqlx::Result<Vec<Contact>> {
    let rows = sqlx::query(CONTACTS).bind(ids).fetch_all(db).await?;
    Ok(rows
        .into_iter()
        .map(|r| Contact {
            id: r.get("id"),
            email: r.get("email"),
            name: r.get("name"),
            status: r.get("status"),
            link_version: r.get("link_version"),
            topics: r.get("topics"),
            lists: r.get("lists"),
        })
        .collect())
}

/// Counts a hard bounce; at `limit` bounces the subscriber becomes `bounced` and is never
/// mailed again. Returns whether they are now bounced.
pub async fn record_hard_bounce(
    db: impl PgExecutor<'_>,
    id: Uuid,
    limit: u32,
) -> sqlx::Result<bool> {
    let status: Option<String> = sqlx::query_scalar(
        "UPDATE subscribers
         SET hard_bounces = hard_bounces + 1, updated_at = now(),
             status = CASE WHEN hard_bounces + 1 >= $2 AND status IN ('confirmed', 'pending', 'lapsed')
                           THEN 'bounced' ELSE status END
         WHERE id = $1 RETURNING status",
    )
    .bind(id)
    .bind(i32::try_from(limit).unwrap_or(i32::MAX))
    .fetch_optional(db)
    .await?;
    Ok(status.as_deref() == Some("bounced"))
}

/// Deletes sign-ups never confirmed and older than `older_than`. Returns how many.
pub async fn purge_unconfirmed(
    db: impl PgExecutor<'_>,
    older_than: std::time::Duration,
) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "DELETE FROM subscribers
         WHERE status = 'pending' AND confirmed_at IS NULL
           AND created_at < now() - make_interval(secs => $1)",
    )
    .bind(super::seconds(older_than))
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// A subscriber search, already parsed: `contains` (lower case) is matched within the address
/// and the name; shorter than three characters it matches only their start.
#[derive(Debug, Default, Clone)]
pub struct SearchFilter {
    pub contains: Option<String>,
    pub status: Option<String>,
    pub list: Option<String>,
    pub us_state: Option<String>,
}

/// A row of the search result.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct SubscriberRow {
    pub id: Uuid,
    pub email: String,
    pub name: Option<String>,
    pub status: String,
    pub state: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// Shortest search text matched anywhere (the trigram index needs three characters).
pub const MIN_CONTAINED: usize = 3;

/// `text` with LIKE's wildcards escaped.
fn like_escaped(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// The list a filter names, as `Ok(None)` when it names none and `Err(())` when no list has
/// that slug. Looked up first so the planner sees the list's own id (and knows its size).
pub(crate) async fn filter_list(
    db: impl PgExecutor<'_>,
    f: &SearchFilter,
) -> sqlx::Result<Result<Option<Uuid>, ()>> {
    let Some(slug) = &f.list else {
        return Ok(Ok(None));
    };
    let id: Option<Uuid> = sqlx::query_scalar("SELECT id FROM lists WHERE slug = $1")
        .bind(slug)
        .fetch_optional(db)
        .await?;
    Ok(id.map(Some).ok_or(()))
}

/// Appends the filter's conditions (each after an `AND`).
pub(crate) fn push_filter(
    q: &mut sqlx::QueryBuilder<'_, sqlx::Postgres>,
    f: &SearchFilter,
    list_id: Option<Uuid>,
) {
    if let Some(text) = &f.contains {
        let escaped = like_escaped(text);
        if text.chars().count() >= MIN_CONTAINED {
            // The expression of the trigram index `subscribers_search_trgm`.
            q.push(" AND (s.email_normalized || ' ' || lower(coalesce(s.name, ''))) LIKE ")
                .push_bind(format!("%{escaped}%"));
        } else {
            q.push(" AND (s.email_normalized LIKE ")
                .push_bind(format!("{escaped}%"))
                .push(" OR lower(s.name) LIKE ")
                .push_bind(format!("{escaped}%"))
                .push(")");
        }
    }
    if let Some(status) = &f.status {
        q.push(" AND s.status = ").push_bind(status.clone());
    }
    if let Some(state) = &f.us_state {
        q.push(" AND s.us_state = ").push_bind(state.clone());
    }
    if let Some(list_id) = list_id {
        q.push(
            " AND s.id IN (SELECT sub.subscriber_id FROM subscriptions sub
                           WHERE sub.status <> 'unsubscribed' AND sub.list_id = ",
        )
        .push_bind(list_id)
        .push(")");
    }
}

/// One page of subscribers matching `f`, newest first, after the keyset position `after`
/// (`created_at`, `id` of the last row of the previous page).
pub async fn search(
    db: &sqlx::PgPool,
    f: &SearchFilter,
    after: Option<(chrono::DateTime<chrono::Utc>, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<SubscriberRow>> {
    let Ok(list_id) = filter_list(db, f).await? else {
        return Ok(Vec::new());
    };
    let mut q = sqlx::QueryBuilder::new(
        "SELECT s.id, s.email, s.name, s.status, s.us_state, s.created_at FROM subscribers s WHERE true",
    );
    push_filter(&mut q, f, list_id);
    if let Some((at, id)) = after {
        q.push(" AND (s.created_at, s.id) < (")
            .push_bind(at)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    q.push(" ORDER BY s.created_at DESC, s.id DESC LIMIT ")
        .push_bind(limit);
    let rows = q.build().fetch_all(db).await?;
    Ok(rows
        .iter()
        .map(|r| SubscriberRow {
            id: r.get("id"),
            email: r.get("email"),
            name: r.get("name"),
            status: r.get("status"),
            state: r.get("us_state"),
            created_at: r.get("created_at"),
        })
        .collect())
}

/// A subscriber as the export has them: (email, name, status, state, created_at, confirmed
/// lists, lists awaiting their confirmation).
pub type ExportRow = (
    String,
    Option<String>,
    String,
    Option<String>,
    String,
    Vec<String>,
    Vec<String>,
);

/// The export's columns of a subscriber `s` (an [`ExportRow`]), then `FROM subscribers s`.
pub(crate) const EXPORT_SELECT: &str = "SELECT s.email, s.name, s.status, s.us_state,
        to_char(s.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
        ARRAY(SELECT l.slug FROM subscriptions sub JOIN lists l ON l.id = sub.list_id
              WHERE sub.subscriber_id = s.id AND sub.status = 'confirmed' ORDER BY l.slug),
        ARRAY(SELECT l.slug FROM subscriptions sub JOIN lists l ON l.id = sub.list_id
              WHERE sub.subscriber_id = s.id AND sub.status = 'pending' ORDER BY l.slug)
    FROM subscribers s";

/// Every subscriber matching `f`, newest first, for an export.
pub async fn export_rows(db: &sqlx::PgPool, f: &SearchFilter) -> sqlx::Result<Vec<ExportRow>> {
    let Ok(list_id) = filter_list(db, f).await? else {
        return Ok(Vec::new());
    };
    let mut q = sqlx::QueryBuilder::new(EXPORT_SELECT);
    q.push(" WHERE true");
    push_filter(&mut q, f, list_id);
    q.push(" ORDER BY s.created_at DESC, s.id DESC");
    q.build_query_as().fetch_all(db).await
}

/// One subscription of a subscriber, with its status.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Membership {
    pub slug: String,
    pub name: String,
    pub status: String,
    pub since: chrono::DateTime<chrono::Utc>,
}

/// Everything staff see about one subscriber.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct SubscriberDetail {
    pub id: Uuid,
    pub email: String,
    pub name: Option<String>,
    pub status: String,
    pub state: Option<String>,
    /// None: every topic.
    pub topics: Option<Vec<String>>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub confirmed_at: Option<chrono::DateTime<chrono::Utc>>,
    pub unsubscribed_at: Option<chrono::DateTime<chrono::Utc>>,
    pub hard_bounces: i32,
    pub lists: Vec<Membership>,
    pub consent_log: Vec<serde_json::Value>,
    /// The newest deliveries first, each with the relay's last reply.
    pub deliveries: Vec<serde_json::Value>,
}

/// Most deliveries a subscriber's page shows.
const DELIVERIES_SHOWN: i64 = 200;

pub async fn detail(db: &sqlx::PgPool, id: Uuid) -> sqlx::Result<Option<SubscriberDetail>> {
    let Some(r) = sqlx::query(
        "SELECT id, email, name, status, us_state, topics, created_at, confirmed_at,
                unsubscribed_at, hard_bounces
         FROM subscribers WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await?
    else {
        return Ok(None);
    };
    let lists = sqlx::query(
        "SELECT l.slug, l.name, s.status, s.updated_at FROM subscriptions s
         JOIN lists l ON l.id = s.list_id WHERE s.subscriber_id = $1 ORDER BY l.position, l.name",
    )
    .bind(id)
    .fetch_all(db)
    .await?
    .iter()
    .map(|l| Membership {
        slug: l.get("slug"),
        name: l.get("name"),
        status: l.get("status"),
        since: l.get("updated_at"),
    })
    .collect();
    let consent_log = sqlx::query_scalar(
        "SELECT to_jsonb(x) FROM (SELECT kind, occurred_at, host(ip) AS ip, user_agent, source,
                consent_text, consent_version, lists
         FROM consent_events WHERE subscriber_id = $1 ORDER BY occurred_at, id) x",
    )
    .bind(id)
    .fetch_all(db)
    .await?;
    let deliveries = sqlx::query_scalar(
        "SELECT to_jsonb(x) FROM (SELECT d.id, d.kind, d.update_id, u.subject, d.status,
                d.attempts, d.created_at, d.sent_at, d.last_reply
         FROM deliveries d LEFT JOIN updates u ON u.id = d.update_id
         WHERE d.subscriber_id = $1 ORDER BY d.id DESC LIMIT $2) x",
    )
    .bind(id)
    .bind(DELIVERIES_SHOWN)
    .fetch_all(db)
    .await?;
    Ok(Some(SubscriberDetail {
        id: r.get("id"),
        email: r.get("email"),
        name: r.get("name"),
        status: r.get("status"),
        state: r.get("us_state"),
        topics: r.get("topics"),
        created_at: r.get("created_at"),
        confirmed_at: r.get("confirmed_at"),
        unsubscribed_at: r.get("unsubscribed_at"),
        hard_bounces: r.get("hard_bounces"),
        lists,
        consent_log,
        deliveries,
    }))
}

/// What staff change on a subscriber. `lists`: the slugs to be on (joined as confirmed, for
/// someone confirmed), every other list left; None leaves the lists as they are.
pub struct StaffChanges<'a> {
    pub name: Option<&'a str>,
    pub us_state: Option<&'a str>,
    pub lists: Option<&'a [String]>,
}

/// Applies staff's changes and logs them in the consent log with `source` (`admin`, `api`).
/// False when there is no such subscriber.
pub async fn staff_edit(
    pool: &sqlx::PgPool,
    id: Uuid,
    c: StaffChanges<'_>,
    source: &'static str,
) -> anyhow::Result<bool> {
    use anyhow::Context;
    let mut tx = pool.begin().await.context("starting the change")?;
    let status: Option<String> = sqlx::query_scalar(
        "UPDATE subscribers SET name = $2, us_state = $3, updated_at = now() WHERE id = $1
         RETURNING status",
    )
    .bind(id)
    .bind(c.name)
    .bind(c.us_state)
    .fetch_optional(&mut *tx)
    .await
    .context("saving the profile")?;
    let Some(status) = status else {
        return Ok(false);
    };
    let lists = c.lists.map(|wanted| super::preferences::ListChange {
        wanted,
        public_only: false,
        join: status == "confirmed",
    });
    super::preferences::set_lists_in(
        &mut tx,
        id,
        lists,
        source,
        &super::consent::RequestOrigin::default(),
    )
    .await?;
    tx.commit().await.context("committing the change")?;
    Ok(true)
}

/// Whether any of `hashes` (the spellings of one address) is on the suppression list.
pub async fn is_suppressed(db: impl PgExecutor<'_>, hashes: &[Vec<u8>]) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM suppressions WHERE email_hash = ANY($1))")
        .bind(hashes)
        .fetch_one(db)
        .await
}

/// Why mail to this address is refused, if it is: it is on the suppression list (any of
/// `hashes`, the spellings of one address), or the subscriber at `normalized` unsubscribed,
/// bounced or complained.
pub async fn refusal(
    db: impl PgExecutor<'_>,
    normalized: &str,
    hashes: &[Vec<u8>],
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT coalesce(
            (SELECT 'it is on the suppression list (' || reason || ')' FROM suppressions
             WHERE email_hash = ANY($2) LIMIT 1),
            (SELECT 'the subscriber ' || status FROM subscribers
             WHERE email_normalized = $1 AND status IN ('unsubscribed', 'bounced', 'complained')))",
    )
    .bind(normalized)
    .bind(hashes)
    .fetch_one(db)
    .await
}

/// Sets `last_active_on` to today (UTC) unless it already is (`engagement.remember_last_activity`);
/// a `lapsed` person is `confirmed` again, and an open re-permission question is answered.
/// Nothing else of the row changes.
pub async fn mark_active(pool: &sqlx::PgPool, id: Uuid) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "UPDATE subscribers
         SET last_active_on = (now() AT TIME ZONE 'UTC')::date,
             status = CASE WHEN status = 'lapsed' THEN 'confirmed' ELSE status END,
             updated_at = CASE WHEN status = 'lapsed' THEN now() ELSE updated_at END
         WHERE id = $1 AND (last_active_on IS DISTINCT FROM (now() AT TIME ZONE 'UTC')::date
                            OR status = 'lapsed')",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE repermission_requests SET answered_at = now()
         WHERE subscriber_id = $1 AND answered_at IS NULL AND lapsed_at IS NULL",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}
