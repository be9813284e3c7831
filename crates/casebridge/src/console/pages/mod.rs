//! The console's pages, by area.

pub mod admin;
pub mod data;
pub mod ops;
pub mod sources;
pub mod what_if;
