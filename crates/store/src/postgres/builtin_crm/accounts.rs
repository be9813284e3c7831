//! The built-in CRM's people, agent statuses and custom field definitions.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{account_row, activity_row};
use crate::postgres::PgStore;
use crate::postgres::rows::next_id;
use crate::{Result, StoreError, parse_ts, ts};
use casebridge_crm::builtin::storage::{CrmAccount, CrmActivity, NewAccount};

impl PgStore {
    pub(super) async fn create_account(&self, a: NewAccount) -> Result<(CrmAccount, bool)> {
        let mut tx = self.pool().begin().await?;
        if let Some(k) = &a.ext_key
            && let Some(r) =
                sqlx::query("SELECT * FROM crm_accounts WHERE ext_key = $1").bind(k).fetch_optional(&mut *tx).await?
        {
            return Ok((account_row(&r), false));
        }
        let id = match &a.id {
            Some(id) => id.clone(),
            None => next_id(&mut tx, "crm_accounts", "acct_").await?,
        };
        let at = ts(a.at);
        let inserted = sqlx::query("INSERT INTO crm_accounts (id, ext_key, kind, name, phone, phone_key, email, email_key, user_id, created_at, updated_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) ON CONFLICT (ext_key) DO NOTHING")
            .bind(&id)
            .bind(&a.ext_key)
            .bind(&a.kind)
            .bind(&a.name)
            .bind(&a.phone)
            .bind(&a.phone_key)
            .bind(&a.email)
            .bind(a.email.as_ref().map(|e| e.trim().to_lowercase()))
            .bind(&a.user_id)
            .bind(&at)
            .bind(&at)
            .execute(&mut *tx)
            .await?;
        if inserted.rows_affected() == 0 {
            // Another writer created the same key in between: its account is the one.
            tx.rollback().await?;
            let k = a.ext_key.as_deref().unwrap_or_default();
            let r = sqlx::query("SELECT * FROM crm_accounts WHERE ext_key = $1").bind(k).fetch_one(self.pool()).await?;
            return Ok((account_row(&r), false));
        }
        let r = sqlx::query("SELECT * FROM crm_accounts WHERE id = $1").bind(&id).fetch_one(&mut *tx).await?;
        tx.commit().await?;
        Ok((account_row(&r), true))
    }

    pub(super) async fn find_accounts(
        &self,
        phone_key: Option<&str>,
        email: Option<&str>,
        user_id: Option<&str>,
    ) -> Result<Vec<CrmAccount>> {
        let rows = sqlx::query(
            "SELECT * FROM crm_accounts WHERE ($1 IS NOT NULL AND phone_key = $2) OR ($3 IS NOT NULL AND email_key = $4) OR ($5 IS NOT NULL AND user_id = $6) ORDER BY created_at, id",
        )
        .bind(phone_key)
        .bind(phone_key)
        .bind(email)
        .bind(email.map(|e| e.trim().to_lowercase()))
        .bind(user_id)
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(account_row).collect())
    }

    pub(super) async fn list_accounts(&self, limit: i64) -> Result<Vec<CrmAccount>> {
        let rows = sqlx::query("SELECT * FROM crm_accounts ORDER BY created_at DESC, id DESC LIMIT $1")
            .bind(limit.max(0))
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(account_row).collect())
    }

    pub(super) async fn get_account(&self, id: &str) -> Result<Option<CrmAccount>> {
        let r = sqlx::query("SELECT * FROM crm_accounts WHERE id = $1").bind(id).fetch_optional(self.pool()).await?;
        Ok(r.as_ref().map(account_row))
    }

    pub(super) async fn update_account(
        &self,
        id: &str,
        name: Option<&str>,
        email: Option<&str>,
        user_id: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE crm_accounts SET name = COALESCE($1, name), email = COALESCE($2, email), email_key = COALESCE($3, email_key), user_id = COALESCE($4, user_id), updated_at = $5 WHERE id = $6",
        )
        .bind(name)
        .bind(email)
        .bind(email.map(|e| e.trim().to_lowercase()))
        .bind(user_id)
        .bind(ts(at))
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub(super) async fn account_activities(&self, id: &str) -> Result<Vec<CrmActivity>> {
        let rows = sqlx::query("SELECT * FROM crm_activities WHERE account_id = $1 ORDER BY created_at, id")
            .bind(id)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(activity_row).collect())
    }

    pub(super) async fn set_account_fields(
        &self,
        id: &str,
        fields: &serde_json::Map<String, serde_json::Value>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let a =
            self.get_account(id).await?.ok_or_else(|| StoreError::NotFound(format!("account {id} does not exist")))?;
        self.merge_fields("crm_accounts", id, a.custom_fields, fields, at).await
    }

    pub(super) async fn set_agent_status(&self, email: &str, status: &str, at: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "INSERT INTO crm_agent_statuses (email_key, email, crm_status, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT(email_key) DO UPDATE SET email = excluded.email, crm_status = excluded.crm_status, updated_at = excluded.updated_at",
        )
        .bind(email.trim().to_lowercase())
        .bind(email.trim())
        .bind(status)
        .bind(ts(at))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub(super) async fn agent_statuses(&self) -> Result<Vec<(String, String, DateTime<Utc>)>> {
        let rows = sqlx::query("SELECT email, crm_status, updated_at FROM crm_agent_statuses ORDER BY email_key")
            .fetch_all(self.pool())
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get("email"), r.get("crm_status"), parse_ts(r.get::<String, _>("updated_at").as_str())))
            .collect())
    }

    pub(super) async fn ensure_custom_field(&self, name: &str, object: &str, label: &str, kind: &str) -> Result<bool> {
        let r = sqlx::query(
            "INSERT INTO crm_custom_fields (name, object, label, type, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT(name) DO NOTHING",
        )
        .bind(name)
        .bind(object)
        .bind(label)
        .bind(kind)
        .bind(ts(Utc::now()))
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    pub(super) async fn custom_fields(&self) -> Result<Vec<(String, String, String, String)>> {
        let rows = sqlx::query("SELECT name, object, label, type FROM crm_custom_fields ORDER BY name")
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(|r| (r.get("name"), r.get("object"), r.get("label"), r.get("type"))).collect())
    }
}
