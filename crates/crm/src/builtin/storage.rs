//! The built-in CRM's storage, injected into its connector.
pub use casebridge_store::builtin::*;
pub use casebridge_store::{CrmAccount, CrmRecord, StoreError};
