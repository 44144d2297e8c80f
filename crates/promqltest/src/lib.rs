//! Runner for Prometheus's PromQL test scripts (`.test` files): a parser for the script
//! language, an in-memory storage to load series into, and result comparison.
//!
//! It reports per file how many eval statements passed, failed and were skipped (with the
//! reason). It never changes the engine's behaviour and never talks to a real database; the
//! storage is a plain `storage::Queryable`.

pub mod runner;
pub mod script;
pub mod storage;

pub use runner::{Checks, FileReport, main_cli, print_report, run_file, run_script};
pub use storage::MemStorage;
