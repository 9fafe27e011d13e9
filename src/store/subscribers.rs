use sqlx::{PgExecutor, Row};
use uuid::Uuid;

/// What the worker needs to address a mail.
#[derive(Debug, Clone)]
pub struct Contact {
    pub id: Uuid,
    pub email: String,
    pub name: Option<String>,
    pub status: String,
}

pub async fn contact(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<Contact>> {
    let row = sqlx::query("SELECT id, email, name, status FROM subscribers WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?;
    Ok(row.map(|r| Contact {
        id: r.get("id"),
        email: r.get("email"),
        name: r.get("name"),
        status: r.get("status"),
    }))
}
