//! Integration tests through the public surface: the real binary, a real SQLite file (or a
//! PostgreSQL database with `CASEBRIDGE_TEST_BACKEND=postgres`), HTTP.
#![allow(clippy::unwrap_used)] // tests: a panic is a failure with its message

mod accounts;
mod agents;
mod backpressure;
mod browser;
mod cli;
mod cluster;
mod connectors;
mod conversation;
mod crm_connection;
mod crm_faults;
mod crm_kustomer;
mod crm_rules;
mod crm_salesforce;
mod events_ref;
mod fakes;
mod harness;
mod ingest_amazon_connect;
mod ingest_cti;
mod ingest_genesys;
mod ingest_twilio;
mod intake;
mod loadgen;
mod openapi;
mod operators;
mod phones;
mod records;
mod reliability;
mod settings;
mod simulate;
mod wrapup;
