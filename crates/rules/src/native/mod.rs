//! Native event formats (api.md "Native event formats"): contact-center platforms' own events
//! read into casebridge events. Pure: the caller checks signatures and secrets, keeps the
//! [`Snapshot`] of each session, and stores the events made.
//!
//! Each source module reads one platform's payloads into [`Facts`] (`amazon_connect`,
//! `twilio`, `genesys`, `cti`); `facts` gathers them per session and makes the events.

pub mod amazon_connect;
mod attributes;
pub mod cti;
pub mod facts;
pub mod genesys;
pub mod read;
pub mod twilio;

pub use facts::{Facts, Native, NativeMessage, Reading, Snapshot, Source};
