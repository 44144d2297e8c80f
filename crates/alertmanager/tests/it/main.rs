//! Integration tests of the alertmanager role.
