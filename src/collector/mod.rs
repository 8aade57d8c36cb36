//! The collector: the central server every station ships its signed airing records and
//! heartbeats to. It keeps them in SQLite ([`store`]), answers the ingest/query HTTP API
//! ([`http`], which also serves the office web app, [`crate::web`]) and feeds the reports ([`crate::report`]).
//!
//! **Architecture Invariant:** the collector never alters a record: what a station signed is what
//! is stored and what is exported; it only refuses (with a reason) or accepts whole batches.
//! Station keys live only in the registry file ([`registry`]).

pub mod accounts;
pub mod audit;
pub mod authz;
pub mod bulletin_pages;
pub mod bulletins;
pub mod centre;
pub mod db;
pub mod enrolment;
pub mod facts;
pub mod http;
pub mod ingest;
pub mod library;
pub mod migrate;
pub mod office;
pub mod overview;
pub mod pages;
pub mod plans;
pub mod push;
pub mod readiness;
pub mod registry;
pub mod selfcheck;
pub mod status;
pub mod store;
pub mod table;
pub mod tts;
pub mod versions;

pub use http::{AppState, serve};
pub use plans::PlanCache;
pub use registry::{Registry, StationEntry};
pub use store::Store;
