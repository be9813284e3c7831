//! PostgreSQL implementation of [`SettingsStore`].

use async_trait::async_trait;
use chrono::Utc;
use sqlx::Row;

use super::PgStore;
use crate::{Result, SettingsChange, SettingsStore, SettingsVersion, parse_ts, ts};

const UPSERT: &str = "INSERT INTO settings (id, doc, updated_at) VALUES (1, $1, $2) ON CONFLICT(id) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at";

fn version(r: &sqlx::postgres::PgRow) -> Result<SettingsVersion> {
    let changed: String = r.try_get("changed")?;
    Ok(SettingsVersion {
        id: r.try_get("id")?,
        at: parse_ts(&r.try_get::<String, _>("at")?),
        source: r.try_get("source")?,
        changed: serde_json::from_str(&changed)?,
        restored_from: r.try_get("restored_from")?,
        doc: r.try_get("doc")?,
    })
}

#[async_trait]
impl SettingsStore for PgStore {
    async fn settings_get(&self) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT doc FROM settings WHERE id = 1").fetch_optional(self.pool()).await?)
    }

    async fn settings_put(&self, doc: &str) -> Result<()> {
        sqlx::query(UPSERT).bind(doc).bind(ts(Utc::now())).execute(self.pool()).await?;
        Ok(())
    }

    async fn settings_change(&self, c: SettingsChange<'_>) -> Result<i64> {
        let now = ts(Utc::now());
        let mut tx = self.pool().begin().await?;
        sqlx::query(UPSERT).bind(c.doc).bind(&now).execute(&mut *tx).await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO settings_history (at, source, changed, restored_from, doc) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(&now)
        .bind(c.source)
        .bind(serde_json::to_string(c.changed)?)
        .bind(c.restored_from)
        .bind(c.doc)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn settings_history(&self, limit: u32) -> Result<Vec<SettingsVersion>> {
        let rows = sqlx::query("SELECT * FROM settings_history ORDER BY id DESC LIMIT $1")
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(version).collect()
    }

    async fn settings_version(&self, id: i64) -> Result<Option<SettingsVersion>> {
        let row =
            sqlx::query("SELECT * FROM settings_history WHERE id = $1").bind(id).fetch_optional(self.pool()).await?;
        row.as_ref().map(version).transpose()
    }
}
