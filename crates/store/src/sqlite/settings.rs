//! SQLite implementation of [`SettingsStore`].

use async_trait::async_trait;
use chrono::Utc;
use sqlx::Row;

use super::SqliteStore;
use crate::{Result, SettingsChange, SettingsStore, SettingsVersion, parse_ts, ts};

const UPSERT: &str = "INSERT INTO settings (id, doc, updated_at) VALUES (1, ?, ?) ON CONFLICT(id) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at";

fn version(r: &sqlx::sqlite::SqliteRow) -> Result<SettingsVersion> {
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
impl SettingsStore for SqliteStore {
    async fn settings_get(&self) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT doc FROM settings WHERE id = 1").fetch_optional(&self.read).await?)
    }

    async fn settings_put(&self, doc: &str) -> Result<()> {
        let mut conn = self.durable.acquire().await?;
        let r = sqlx::query(UPSERT).bind(doc).bind(ts(Utc::now())).execute(&mut *conn).await;
        r?;
        Ok(())
    }

    async fn settings_change(&self, c: SettingsChange<'_>) -> Result<i64> {
        let mut conn = self.durable.acquire().await?;
        async {
            let now = ts(Utc::now());
            let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?;
            sqlx::query(UPSERT).bind(c.doc).bind(&now).execute(&mut *tx).await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO settings_history (at, source, changed, restored_from, doc) VALUES (?, ?, ?, ?, ?) RETURNING id",
            )
            .bind(&now)
            .bind(c.source)
            .bind(serde_json::to_string(c.changed)?)
            .bind(c.restored_from)
            .bind(c.doc)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, crate::StoreError>(id)
        }
        .await
    }

    async fn settings_history(&self, limit: u32) -> Result<Vec<SettingsVersion>> {
        let rows = sqlx::query("SELECT * FROM settings_history ORDER BY id DESC LIMIT ?")
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(version).collect()
    }

    async fn settings_version(&self, id: i64) -> Result<Option<SettingsVersion>> {
        let row =
            sqlx::query("SELECT * FROM settings_history WHERE id = ?").bind(id).fetch_optional(&self.read).await?;
        row.as_ref().map(version).transpose()
    }
}
