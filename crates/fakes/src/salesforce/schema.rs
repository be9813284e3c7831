//! The fake org's schema: each object's standard fields (writable and read-only), person-account
//! fields, phone fields searched by SOSL, picklists, and the key prefixes of ids.

/// Fields every object has and no client writes.
pub const SYSTEM_FIELDS: &[&str] =
    &["Id", "CreatedDate", "LastModifiedDate", "SystemModstamp", "CreatedById", "LastModifiedById", "IsDeleted"];

/// Standard fields of an object: (writable, read-only). `None` for objects the fake lacks.
pub fn standard(obj: &str) -> Option<(&'static [&'static str], &'static [&'static str])> {
    Some(match obj {
        "Contact" => (
            &[
                "FirstName",
                "LastName",
                "Phone",
                "MobilePhone",
                "HomePhone",
                "OtherPhone",
                "AssistantPhone",
                "Email",
                "AccountId",
                "Description",
                "OwnerId",
                "LeadSource",
                "Title",
            ],
            &["Name"],
        ),
        "Lead" => (
            &[
                "FirstName",
                "LastName",
                "Company",
                "Phone",
                "MobilePhone",
                "Email",
                "Status",
                "Description",
                "OwnerId",
                "LeadSource",
                "Title",
            ],
            &["Name", "IsConverted"],
        ),
        "Account" => (&["Name", "Phone", "Description", "OwnerId", "Type"], &[]),
        "Case" => (
            &[
                "Subject",
                "Description",
                "Status",
                "Origin",
                "Priority",
                "ContactId",
                "AccountId",
                "OwnerId",
                "SuppliedPhone",
                "SuppliedEmail",
                "SuppliedName",
                "Type",
                "Reason",
            ],
            &["IsClosed", "ClosedDate", "CaseNumber"],
        ),
        "Task" => (
            &[
                "Subject",
                "Description",
                "Status",
                "Priority",
                "WhoId",
                "WhatId",
                "OwnerId",
                "ActivityDate",
                "TaskSubtype",
                "CallType",
                "CallDurationInSeconds",
                "CallObject",
                "CallDisposition",
            ],
            &["IsClosed", "AccountId"],
        ),
        "CaseComment" => (&["ParentId", "CommentBody", "IsPublished"], &[]),
        "ContentVersion" => (
            &["Title", "PathOnClient", "VersionData", "FirstPublishLocationId", "Description", "ReasonForChange"],
            &["ContentDocumentId", "ContentSize", "VersionNumber", "FileExtension"],
        ),
        "CaseStatus" => (&[], &["ApiName", "MasterLabel", "IsClosed", "IsDefault", "SortOrder"]),
        "User" => (&[], &["Name", "Email", "Username", "IsActive"]),
        _ => return None,
    })
}

/// Person-account fields of `Account`, present only when the org enables person accounts.
pub const PERSON_FIELDS: &[&str] = &["FirstName", "LastName", "PersonEmail", "PersonMobilePhone", "PersonHomePhone"];
pub const PERSON_READ_ONLY: &[&str] = &["IsPersonAccount", "PersonContactId"];

/// Fields searched by `IN PHONE FIELDS`.
pub const PHONE_FIELDS: &[&str] =
    &["Phone", "MobilePhone", "HomePhone", "OtherPhone", "AssistantPhone", "PersonMobilePhone", "PersonHomePhone"];

/// Task statuses (`Completed` closes a task).
pub const TASK_STATUSES: &[&str] = &["Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred"];

/// The key prefix of an object's ids.
pub fn prefix(obj: &str) -> &'static str {
    match obj {
        "Account" => "001",
        "Contact" => "003",
        "User" => "005",
        "Lead" => "00Q",
        "Task" => "00T",
        "CaseComment" => "00a",
        "CaseStatus" => "01J",
        "ContentVersion" => "068",
        "ContentDocument" => "069",
        "CustomField" => "00N",
        "Case" => "500",
        _ => "a00",
    }
}
