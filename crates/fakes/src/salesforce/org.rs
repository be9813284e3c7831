//! The fake org's data: sObjects by type, their schema (standard fields, custom fields created
//! through the Tooling API), ids with Salesforce's key prefixes, derived fields (`Name`,
//! `Case.IsClosed` from `CaseStatus`, `ClosedDate`), reference checks, and upsert by external id.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::schema::{PERSON_FIELDS, PERSON_READ_ONLY, SYSTEM_FIELDS, TASK_STATUSES, prefix, standard};

/// One sObject as stored: its fields, `Id` included.
pub type Record = Map<String, Value>;

/// A Salesforce error: HTTP status plus one `{message, errorCode, fields}` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct SfError {
    /// HTTP status.
    pub status: u16,
    /// `errorCode`.
    pub code: &'static str,
    /// `message`.
    pub message: String,
    /// `fields`.
    pub fields: Vec<String>,
}

impl SfError {
    /// An error without fields.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> SfError {
        SfError { status, code, message: message.into(), fields: Vec::new() }
    }

    /// An error about one field.
    pub fn on(status: u16, code: &'static str, message: impl Into<String>, field: &str) -> SfError {
        SfError { status, code, message: message.into(), fields: vec![field.to_string()] }
    }

    /// Salesforce's error body: an array of one error.
    pub fn body(&self) -> Value {
        json!([{"message": self.message, "errorCode": self.code, "fields": self.fields}])
    }

    /// `NOT_FOUND` for a resource.
    pub fn not_found() -> SfError {
        SfError::new(404, "NOT_FOUND", "The requested resource does not exist")
    }
}

/// A custom field.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomField {
    /// Label.
    pub label: String,
    /// Metadata type (`Text`, `Number`, `LongTextArea`, …).
    pub kind: String,
    /// Marked External ID.
    pub external_id: bool,
}

/// Settings a test or a person can change through `/__fake/salesforce/config`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OrgConfig {
    /// The org's API request allocation (per 24 h).
    pub daily_limit: u64,
    /// Requests counted against it so far.
    pub api_usage: u64,
    /// Whether person accounts are enabled (`Account.IsPersonAccount` exists).
    pub person_accounts: bool,
    /// Whether the run-as user may create custom fields (Customize Application).
    pub tooling_allowed: bool,
    /// Seconds a token lives (none: until expired by hand).
    pub token_ttl_s: Option<u64>,
    /// Records per page of a query answer before `nextRecordsUrl`.
    pub page_size: usize,
}

impl Default for OrgConfig {
    fn default() -> OrgConfig {
        OrgConfig {
            daily_limit: 100_000,
            api_usage: 0,
            person_accounts: false,
            tooling_allowed: true,
            token_ttl_s: None,
            page_size: 2000,
        }
    }
}

/// The org's data.
#[derive(Debug, Clone)]
pub struct Org {
    /// Objects by type, in creation order.
    pub objects: BTreeMap<String, Vec<Record>>,
    /// Custom fields by object.
    pub custom: BTreeMap<String, BTreeMap<String, CustomField>>,
    /// Ids of deleted records.
    pub deleted: BTreeSet<String>,
    /// Settings.
    pub config: OrgConfig,
    seq: u64,
    /// The run-as user's id (owner of what the API creates).
    pub run_as: String,
}

/// A Salesforce datetime (`2026-11-20T10:00:00.000+0000`).
pub fn now_sf() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string()
}

impl Org {
    /// A new org with its standard data: the run-as user, case statuses (two closed ones) and
    /// casebridge's fields (key, tags, queue).
    pub fn new() -> Org {
        let mut org = Org {
            objects: BTreeMap::new(),
            custom: BTreeMap::new(),
            deleted: BTreeSet::new(),
            config: OrgConfig::default(),
            seq: 0,
            run_as: String::new(),
        };
        let user = org.insert_raw(
            "User",
            json!({"Name": "Integration User", "Email": "integration@example.com",
                   "Username": "integration@example.com.fake", "IsActive": true}),
        );
        org.run_as = user;
        for (i, (name, closed, default)) in [
            ("New", false, true),
            ("Working", false, false),
            ("Escalated", false, false),
            ("Closed", true, false),
            ("Resolved", true, false),
        ]
        .into_iter()
        .enumerate()
        {
            org.insert_raw(
                "CaseStatus",
                json!({"ApiName": name, "MasterLabel": name, "IsClosed": closed, "IsDefault": default,
                       "SortOrder": i + 1}),
            );
        }
        for obj in ["Contact", "Lead", "Account", "Case", "Task"] {
            org.add_custom(obj, "Casebridge_Key__c", "casebridge key", "Text", true);
        }
        org.add_custom("Case", "Casebridge_Tags__c", "casebridge tags", "LongTextArea", false);
        org.add_custom("Case", "Casebridge_Queue__c", "casebridge queue", "Text", false);
        org
    }

    /// Adds a custom field (false when one with the name exists).
    pub fn add_custom(&mut self, obj: &str, name: &str, label: &str, kind: &str, external_id: bool) -> bool {
        let fields = self.custom.entry(obj.to_string()).or_default();
        if fields.keys().any(|k| k.eq_ignore_ascii_case(name)) {
            return false;
        }
        fields.insert(name.to_string(), CustomField { label: label.into(), kind: kind.into(), external_id });
        true
    }

    /// Whether the fake knows this object.
    pub fn knows(&self, obj: &str) -> bool {
        standard(obj).is_some()
    }

    /// The field's name as the schema spells it, when the object has it.
    pub fn field(&self, obj: &str, name: &str) -> Option<String> {
        let (w, ro) = standard(obj)?;
        let person: Vec<&str> = if obj == "Account" && self.config.person_accounts {
            PERSON_FIELDS.iter().chain(PERSON_READ_ONLY).copied().collect()
        } else {
            Vec::new()
        };
        let found = SYSTEM_FIELDS.iter().chain(w).chain(ro).chain(person.iter()).find(|f| f.eq_ignore_ascii_case(name));
        if let Some(f) = found {
            return Some(f.to_string());
        }
        self.custom.get(obj)?.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
    }

    fn writable(&self, obj: &str, name: &str) -> bool {
        let Some((w, _)) = standard(obj) else { return false };
        w.contains(&name)
            || (obj == "Account" && self.config.person_accounts && PERSON_FIELDS.contains(&name))
            || self.custom.get(obj).is_some_and(|c| c.contains_key(name))
    }

    /// Whether the field is an External ID (or `Id`).
    pub fn is_external_id(&self, obj: &str, name: &str) -> bool {
        name == "Id" || self.custom.get(obj).and_then(|c| c.get(name)).is_some_and(|f| f.external_id)
    }

    /// The object's describe: name and fields.
    pub fn describe(&self, obj: &str) -> Option<Value> {
        let (w, ro) = standard(obj)?;
        let mut fields: Vec<Value> = Vec::new();
        for f in SYSTEM_FIELDS.iter().chain(ro) {
            fields.push(
                json!({"name": f, "createable": false, "updateable": false, "externalId": false, "custom": false}),
            );
        }
        for f in w {
            fields
                .push(json!({"name": f, "createable": true, "updateable": true, "externalId": false, "custom": false}));
        }
        if obj == "Account" && self.config.person_accounts {
            for f in PERSON_FIELDS {
                fields.push(
                    json!({"name": f, "createable": true, "updateable": true, "externalId": false, "custom": false}),
                );
            }
            for f in PERSON_READ_ONLY {
                fields.push(
                    json!({"name": f, "createable": false, "updateable": false, "externalId": false, "custom": false}),
                );
            }
        }
        for (name, c) in self.custom.get(obj).into_iter().flatten() {
            fields.push(json!({"name": name, "label": c.label, "type": c.kind, "createable": true, "updateable": true,
                               "externalId": c.external_id, "custom": true}));
        }
        Some(json!({"name": obj, "createable": !w.is_empty(), "queryable": true, "fields": fields}))
    }

    fn next_id(&mut self, obj: &str) -> String {
        self.seq += 1;
        format!("{}FK{:010}AAA", prefix(obj), self.seq)
    }

    /// Stores a record as given (seeding): only `Id`, system dates and derived fields are added.
    pub fn insert_raw(&mut self, obj: &str, fields: Value) -> String {
        let id = self.next_id(obj);
        let mut r: Record = fields.as_object().cloned().unwrap_or_default();
        r.insert("Id".into(), json!(id));
        let now = now_sf();
        r.entry("CreatedDate").or_insert_with(|| json!(now));
        r.entry("LastModifiedDate").or_insert_with(|| json!(now));
        r.insert("SystemModstamp".into(), json!(now));
        self.derive(obj, &mut r, None);
        self.objects.entry(obj.to_string()).or_default().push(r);
        id
    }

    /// Records of a type.
    pub fn all(&self, obj: &str) -> &[Record] {
        self.objects.get(obj).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The type and record with this id.
    pub fn get(&self, id: &str) -> Option<(&str, &Record)> {
        self.objects.iter().find_map(|(t, v)| v.iter().find(|r| r["Id"] == id).map(|r| (t.as_str(), r)))
    }

    fn get_mut(&mut self, obj: &str, id: &str) -> Option<&mut Record> {
        self.objects.get_mut(obj)?.iter_mut().find(|r| r["Id"] == id)
    }

    /// Ids of records of `obj` whose `field` equals `value` (case-insensitive, as External IDs).
    pub fn by_field(&self, obj: &str, field: &str, value: &str) -> Vec<String> {
        self.all(obj)
            .iter()
            .filter(|r| r.get(field).and_then(Value::as_str).is_some_and(|v| v.eq_ignore_ascii_case(value)))
            .filter_map(|r| r["Id"].as_str().map(str::to_string))
            .collect()
    }

    fn case_status(&self, name: &str) -> Option<&Record> {
        self.all("CaseStatus").iter().find(|s| s["ApiName"].as_str().is_some_and(|a| a.eq_ignore_ascii_case(name)))
    }

    /// The status a new case gets.
    pub fn default_case_status(&self) -> String {
        self.all("CaseStatus")
            .iter()
            .find(|s| s["IsDefault"] == true)
            .and_then(|s| s["ApiName"].as_str())
            .unwrap_or("New")
            .to_string()
    }

    /// Fields computed by the platform; `before` is the record before this write.
    fn derive(&self, obj: &str, r: &mut Record, before: Option<&Record>) {
        let text = |r: &Record, f: &str| r.get(f).and_then(Value::as_str).map(str::to_string);
        let name = |r: &Record| {
            let parts: Vec<String> = [text(r, "FirstName"), text(r, "LastName")].into_iter().flatten().collect();
            parts.join(" ")
        };
        match obj {
            "Contact" | "Lead" => {
                r.insert("Name".into(), json!(name(r)));
                if obj == "Lead" {
                    r.entry("IsConverted").or_insert(json!(false));
                    r.entry("Status").or_insert(json!("Open - Not Contacted"));
                }
            }
            "Account" if self.config.person_accounts && r.contains_key("LastName") => {
                r.insert("IsPersonAccount".into(), json!(true));
                r.insert("Name".into(), json!(name(r)));
            }
            "Account" if self.config.person_accounts => {
                r.entry("IsPersonAccount").or_insert(json!(false));
            }
            "Case" => {
                if !r.contains_key("Status") {
                    r.insert("Status".into(), json!(self.default_case_status()));
                }
                let closed =
                    text(r, "Status").and_then(|s| self.case_status(&s)).is_some_and(|s| s["IsClosed"] == true);
                let was_closed = before.is_some_and(|b| b["IsClosed"] == true);
                r.insert("IsClosed".into(), json!(closed));
                if closed && !was_closed && before.is_some() {
                    r.insert("ClosedDate".into(), json!(now_sf()));
                } else if closed && before.is_none() {
                    r.entry("ClosedDate").or_insert_with(|| json!(now_sf()));
                } else if !closed {
                    r.insert("ClosedDate".into(), Value::Null);
                }
                if !r.contains_key("CaseNumber") {
                    let n = 1000 + self.all("Case").len() + 1;
                    r.insert("CaseNumber".into(), json!(format!("{n:08}")));
                }
            }
            "Task" => {
                r.entry("Status").or_insert(json!("Not Started"));
                r.insert("IsClosed".into(), json!(r["Status"] == "Completed"));
            }
            _ => {}
        }
        if !matches!(obj, "CaseStatus" | "User" | "CaseComment" | "ContentVersion") {
            r.entry("OwnerId").or_insert_with(|| json!(self.run_as));
        }
    }

    /// Checks a write's fields: known, writable, references to live records, picklists.
    fn check_fields(&self, obj: &str, fields: &Map<String, Value>) -> Result<Map<String, Value>, SfError> {
        let mut out = Map::new();
        let mut read_only = Vec::new();
        for (k, v) in fields {
            if k == "attributes" {
                continue;
            }
            let Some(name) = self.field(obj, k) else {
                return Err(SfError::new(
                    400,
                    "INVALID_FIELD",
                    format!("No such column '{k}' on sobject of type {obj}"),
                ));
            };
            if !self.writable(obj, &name) {
                read_only.push(name);
                continue;
            }
            self.check_reference(obj, &name, v)?;
            out.insert(name, v.clone());
        }
        if !read_only.is_empty() {
            return Err(SfError {
                status: 400,
                code: "INVALID_FIELD_FOR_INSERT_UPDATE",
                message: format!(
                    "Unable to create/update fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
                    read_only.join(", ")
                ),
                fields: read_only,
            });
        }
        if obj == "Case"
            && let Some(s) = out.get("Status").and_then(Value::as_str)
            && self.case_status(s).is_none()
        {
            return Err(SfError::on(
                400,
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                format!("Status: bad value for restricted picklist field: {s}"),
                "Status",
            ));
        }
        if obj == "Task" {
            if let Some(s) = out.get("Status").and_then(Value::as_str)
                && !TASK_STATUSES.contains(&s)
            {
                return Err(SfError::on(
                    400,
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    format!("Status: bad value for restricted picklist field: {s}"),
                    "Status",
                ));
            }
            if let Some(s) = out.get("CallType").and_then(Value::as_str)
                && !["Internal", "Inbound", "Outbound"].contains(&s)
            {
                return Err(SfError::on(
                    400,
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    format!("Call Type: bad value for restricted picklist field: {s}"),
                    "CallType",
                ));
            }
        }
        Ok(out)
    }

    fn check_reference(&self, obj: &str, field: &str, v: &Value) -> Result<(), SfError> {
        let allowed: &[&str] = match (obj, field) {
            (_, "ContactId") => &["Contact"],
            (_, "AccountId") => &["Account"],
            (_, "OwnerId") => &["User"],
            ("Task", "WhoId") => &["Contact", "Lead"],
            ("Task", "WhatId") => &["Case", "Account"],
            ("CaseComment", "ParentId") => &["Case"],
            ("ContentVersion", "FirstPublishLocationId") => &["Case", "Account", "Contact", "Lead", "User"],
            _ => return Ok(()),
        };
        let Some(id) = v.as_str().filter(|s| !s.is_empty()) else { return Ok(()) };
        if self.deleted.contains(id) {
            return Err(SfError::on(400, "ENTITY_IS_DELETED", "entity is deleted", field));
        }
        match self.get(id) {
            Some((t, _)) if allowed.contains(&t) => Ok(()),
            Some(_) => Err(SfError::on(
                400,
                "FIELD_INTEGRITY_EXCEPTION",
                format!("{field}: id value of incorrect type: {id}"),
                field,
            )),
            None => Err(SfError::on(
                400,
                "INVALID_CROSS_REFERENCE_KEY",
                format!("invalid cross reference id ({field}: {id})"),
                field,
            )),
        }
    }

    fn required(&self, obj: &str, r: &Record) -> Result<(), SfError> {
        let need: &[&str] = match obj {
            "Contact" => &["LastName"],
            "Lead" => &["LastName", "Company"],
            "CaseComment" => &["ParentId"],
            "ContentVersion" => &["PathOnClient"],
            "Account" if !(self.config.person_accounts && r.contains_key("LastName")) => &["Name"],
            _ => &[],
        };
        for f in need {
            if r.get(*f).is_none_or(|v| v.is_null() || v == "") {
                return Err(SfError::on(
                    400,
                    "REQUIRED_FIELD_MISSING",
                    format!("Required fields are missing: [{f}]"),
                    f,
                ));
            }
        }
        Ok(())
    }

    /// Creates a record through the API.
    pub fn create(&mut self, obj: &str, fields: &Map<String, Value>) -> Result<String, SfError> {
        if !self.knows(obj) || matches!(obj, "CaseStatus" | "User") {
            return Err(SfError::new(
                400,
                "NOT_FOUND",
                format!("The requested resource does not exist (cannot create {obj})"),
            ));
        }
        let checked = self.check_fields(obj, fields)?;
        self.required(obj, &checked)?;
        let id = self.next_id(obj);
        let mut r = checked;
        r.insert("Id".into(), json!(id));
        let now = now_sf();
        r.insert("CreatedDate".into(), json!(now));
        r.insert("LastModifiedDate".into(), json!(now));
        r.insert("SystemModstamp".into(), json!(now));
        r.insert("CreatedById".into(), json!(self.run_as));
        if obj == "ContentVersion" {
            r.insert("ContentDocumentId".into(), json!(self.next_id("ContentDocument")));
            r.insert("VersionNumber".into(), json!("1"));
        }
        self.derive(obj, &mut r, None);
        self.objects.entry(obj.to_string()).or_default().push(r);
        Ok(id)
    }

    /// Updates a record through the API.
    pub fn update(&mut self, obj: &str, id: &str, fields: &Map<String, Value>) -> Result<(), SfError> {
        let checked = self.check_fields(obj, fields)?;
        let Some(before) = self.get_mut(obj, id).map(|r| r.clone()) else {
            return Err(if self.deleted.contains(id) {
                SfError::new(404, "ENTITY_IS_DELETED", "entity is deleted")
            } else {
                SfError::not_found()
            });
        };
        let mut r = before.clone();
        for (k, v) in checked {
            r.insert(k, v);
        }
        let now = now_sf();
        r.insert("LastModifiedDate".into(), json!(now));
        r.insert("SystemModstamp".into(), json!(now));
        self.derive(obj, &mut r, Some(&before));
        if let Some(slot) = self.get_mut(obj, id) {
            *slot = r;
        }
        Ok(())
    }

    /// Sets a field as the platform does (no checks): file sizes, seeded dates.
    pub fn set_raw(&mut self, obj: &str, id: &str, field: &str, value: Value) {
        if let Some(r) = self.get_mut(obj, id) {
            r.insert(field.to_string(), value);
        }
    }

    /// Deletes a record.
    pub fn delete(&mut self, obj: &str, id: &str) -> Result<(), SfError> {
        let Some(list) = self.objects.get_mut(obj) else { return Err(SfError::not_found()) };
        let before = list.len();
        list.retain(|r| r["Id"] != id);
        if list.len() == before {
            return Err(if self.deleted.contains(id) {
                SfError::new(404, "ENTITY_IS_DELETED", "entity is deleted")
            } else {
                SfError::not_found()
            });
        }
        self.deleted.insert(id.to_string());
        Ok(())
    }

    /// Upserts by an External ID: `(id, created)`, or the ids of several matches (300).
    pub fn upsert(
        &mut self,
        obj: &str,
        field: &str,
        value: &str,
        fields: &Map<String, Value>,
    ) -> Result<Result<(String, bool), Vec<String>>, SfError> {
        let Some(name) = self.field(obj, field) else {
            return Err(SfError::new(
                404,
                "NOT_FOUND",
                format!("Provided external ID field does not exist or is not accessible: {field}"),
            ));
        };
        if !self.is_external_id(obj, &name) {
            return Err(SfError::new(
                400,
                "INVALID_FIELD",
                format!("Field {name} is not an External ID or indexed field for {obj}"),
            ));
        }
        if fields.keys().any(|k| k.eq_ignore_ascii_case(&name) || k == "Id") {
            return Err(SfError::on(
                400,
                "INVALID_FIELD",
                format!("The field {name} is given in the URL; do not repeat it (or Id) in the body"),
                &name,
            ));
        }
        let hits = self.by_field(obj, &name, value);
        match hits.as_slice() {
            [] => {
                let mut with_key = fields.clone();
                with_key.insert(name, json!(value));
                Ok(Ok((self.create(obj, &with_key)?, true)))
            }
            [one] => {
                let id = one.clone();
                self.update(obj, &id, fields)?;
                Ok(Ok((id, false)))
            }
            _ => Ok(Err(hits)),
        }
    }
}

impl Default for Org {
    fn default() -> Org {
        Org::new()
    }
}
