//! Integration tests for expfmt: the upstream fixtures, malformed and
//! truncated bodies, random bytes, and writer round trips.

mod fixtures;
mod malformed;
mod robustness;
mod roundtrip;

use std::path::PathBuf;

use expfmt::{Entry, Format, ParseError, Parser};

/// Reads a file of `../shared/peer-tests/textparse/`.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/peer-tests/textparse")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// What a body holds, counted by entry kind.
#[derive(Debug, Default, PartialEq)]
pub struct Counts {
    pub samples: usize,
    pub types: usize,
    pub helps: usize,
    pub units: usize,
}

/// Parses a whole body, counting entries, or returns the first error.
pub fn count(body: &[u8], format: Format) -> Result<Counts, ParseError> {
    let mut p = Parser::new(body, format);
    let mut c = Counts::default();
    while let Some(e) = p.next_entry()? {
        match e {
            Entry::Sample(_) => c.samples += 1,
            Entry::Type { .. } => c.types += 1,
            Entry::Help { .. } => c.helps += 1,
            Entry::Unit { .. } => c.units += 1,
        }
    }
    Ok(c)
}

/// Drives a parser to the end; returns the error if there is one. Also
/// checks the parser stays finished afterwards.
pub fn drain(body: &[u8], format: Format) -> Option<ParseError> {
    let mut p = Parser::new(body, format);
    loop {
        match p.next_entry() {
            Ok(Some(_)) => {}
            Ok(None) => return None,
            Err(e) => {
                assert_eq!(p.next_entry(), Ok(None), "parser must stop after an error");
                return Some(e);
            }
        }
    }
}
