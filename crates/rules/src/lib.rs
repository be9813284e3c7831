//! The rules core. Pure: no I/O, no clock, no async.
pub mod phone;
