//! Integration tests through the public surface: the real binary, a real SQLite file, HTTP.

mod accounts;
mod harness;
mod intake;
mod records;
mod conversation;
mod reliability;
mod cli;
