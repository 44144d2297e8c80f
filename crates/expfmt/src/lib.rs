//! expfmt
