//! Integration tests of the scrape crate: real HTTP targets on loopback, an in-memory storage
//! that records what is appended, and the manager driven through its public API.

mod discovery;
mod scrape;
mod support;
