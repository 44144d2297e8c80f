//! tsdb
