//! The built-in CRM's people, agent statuses and custom field definitions.

use chrono::{DateTime, Utc};
use sqlx::Row;

use rusqlite::{OptionalExtension, params};

use super::{account_r, account_row, activity_row};
use crate::sqlite::SqliteStore;
use crate::sqlite::rows::next_id_r;
use crate::{Result, parse_ts, ts};
use casebridge_crm::builtin::storage::{CrmAccount, CrmActivity, NewAccount};

impl SqliteStore {
    pub(super) async fn create_account(&self, a: NewAccount) -> Result<(CrmAccount, bool)> {
        self.owned.write(|c| {
            if let Some(k) = &a.ext_key
                && let Some(found) =
                    c.prepare_cached("SELECT * FROM crm_accounts WHERE ext_key = ?")?.query_row([k], account_r).optional()?
            {
                return Ok((found, false));
            }
            let id = match &a.id {
                Some(id) => id.clone(),
                None => next_id_r(c, "crm_accounts", "acct_")?,
            };
            let at = ts(a.at);
            c.prepare_cached("INSERT INTO crm_accounts (id, ext_key, kind, name, phone, phone_key, email, email_key, user_id, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)")?
                .execute(params![
                    id,
                    a.ext_key,
                    a.kind,
                    a.name,
                    a.phone,
                    a.phone_key,
                    a.email,
                    a.email.as_ref().map(|e| e.trim().to_lowercase()),
                    a.user_id,
                    at,
                    at
                ])?;
            let r = c.prepare_cached("SELECT * FROM crm_accounts WHERE id = ?")?.query_row([&id], account_r)?;
            Ok((r, true))
        })
        .await
    }

    pub(super) async fn find_accounts(
        &self,
        phone_key: Option<&str>,
        email: Option<&str>,
        user_id: Option<&str>,
    ) -> Result<Vec<CrmAccount>> {
        self.owned.read(|c| {
            let email_key = email.map(|e| e.trim().to_lowercase());
            Ok(c.prepare_cached(
                "SELECT * FROM crm_accounts WHERE (?1 IS NOT NULL AND phone_key = ?1) OR (?2 IS NOT NULL AND email_key = ?2) OR (?3 IS NOT NULL AND user_id = ?3) ORDER BY created_at, id",
            )?
            .query_map(params![phone_key, email_key, user_id], account_r)?
            .collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    pub(super) async fn list_accounts(&self, limit: i64) -> Result<Vec<CrmAccount>> {
        let rows = sqlx::query("SELECT * FROM crm_accounts ORDER BY created_at DESC, id DESC LIMIT ?")
            .bind(limit.max(0))
            .fetch_all(&self.read)
            .await?;
        Ok(rows.iter().map(account_row).collect())
    }

    pub(super) async fn get_account(&self, id: &str) -> Result<Option<CrmAccount>> {
        let r = sqlx::query("SELECT * FROM crm_accounts WHERE id = ?").bind(id).fetch_optional(&self.read).await?;
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
        let email_key = email.map(|e| e.trim().to_lowercase());
        self.owned
            .write(|c| {
                c.prepare_cached(
                    "UPDATE crm_accounts SET name = COALESCE(?, name), email = COALESCE(?, email), email_key = COALESCE(?, email_key), user_id = COALESCE(?, user_id), updated_at = ? WHERE id = ?",
                )?
                .execute(params![name, email, email_key, user_id, ts(at), id])?;
                Ok(())
            })
            .await
    }

    pub(super) async fn account_activities(&self, id: &str) -> Result<Vec<CrmActivity>> {
        let rows = sqlx::query("SELECT * FROM crm_activities WHERE account_id = ? ORDER BY created_at, id")
            .bind(id)
            .fetch_all(&self.read)
            .await?;
        Ok(rows.iter().map(activity_row).collect())
    }

    pub(super) async fn set_account_fields(
        &self,
        id: &str,
        fields: &serde_json::Map<String, serde_json::Value>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        self.merge_fields("crm_accounts", "account", id, fields, at).await
    }

    pub(super) async fn set_agent_status(&self, email: &str, status: &str, at: DateTime<Utc>) -> Result<()> {
        self.owned
            .write(|c| {
                c.prepare_cached(
                    "INSERT INTO crm_agent_statuses (email_key, email, crm_status, updated_at) VALUES (?, ?, ?, ?)
                     ON CONFLICT(email_key) DO UPDATE SET email = excluded.email, crm_status = excluded.crm_status, updated_at = excluded.updated_at",
                )?
                .execute(params![email.trim().to_lowercase(), email.trim(), status, ts(at)])?;
                Ok(())
            })
            .await
    }

    pub(super) async fn agent_statuses(&self) -> Result<Vec<(String, String, DateTime<Utc>)>> {
        let rows = sqlx::query("SELECT email, crm_status, updated_at FROM crm_agent_statuses ORDER BY email_key")
            .fetch_all(&self.read)
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get("email"), r.get("crm_status"), parse_ts(r.get::<String, _>("updated_at").as_str())))
            .collect())
    }

    pub(super) async fn ensure_custom_field(&self, name: &str, object: &str, label: &str, kind: &str) -> Result<bool> {
        self.owned
            .write(|c| {
                let n = c
                    .prepare_cached(
                        "INSERT INTO crm_custom_fields (name, object, label, type, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO NOTHING",
                    )?
                    .execute(params![name, object, label, kind, ts(Utc::now())])?;
                Ok(n == 1)
            })
            .await
    }

    pub(super) async fn custom_fields(&self) -> Result<Vec<(String, String, String, String)>> {
        let rows = sqlx::query("SELECT name, object, label, type FROM crm_custom_fields ORDER BY name")
            .fetch_all(&self.read)
            .await?;
        Ok(rows.iter().map(|r| (r.get("name"), r.get("object"), r.get("label"), r.get("type"))).collect())
    }
}
