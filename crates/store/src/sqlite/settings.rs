//! SQLite implementation of [`SettingsStore`].

use async_trait::async_trait;
use chrono::Utc;

use super::SqliteStore;
use crate::{Result, SettingsStore, ts};

#[async_trait]
impl SettingsStore for SqliteStore {
    async fn settings_get(&self) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT doc FROM settings WHERE id = 1").fetch_optional(&self.read).await?)
    }

    async fn settings_put(&self, doc: &str) -> Result<()> {
        let mut conn = self.write.acquire().await?;
        sqlx::query("PRAGMA synchronous = FULL").execute(&mut *conn).await?;
        let r = sqlx::query("INSERT INTO settings (id, doc, updated_at) VALUES (1, ?, ?) ON CONFLICT(id) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at")
            .bind(doc)
            .bind(ts(Utc::now()))
            .execute(&mut *conn)
            .await;
        sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *conn).await?;
        r?;
        Ok(())
    }
}
