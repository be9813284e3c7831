//! The rules core of casebridge. Pure: no I/O, no clock, no async.
//!
//! [`engine::apply`] takes a session's state, one event, the settings and the answers to
//! lookups asked so far, and returns either the lookups it still needs or the new state with
//! its timeline decisions and CRM commands.
pub mod agent;
pub mod engine;
pub mod event;
pub mod fields;
pub mod keys;
pub mod model;
pub mod native;
pub mod ops;
pub mod phone;
pub mod session;
pub mod settings;
pub mod title;
pub mod wrapup;
