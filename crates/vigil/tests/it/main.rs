//! Behaviour tests of the `vigil` binary against real processes: Debian's node exporter and
//! promtool, in-process misbehaving targets, crashes and reloads.

mod am_cluster;
mod api_compat;
mod bad_targets;
mod blocks;
mod config_check;
mod crash;
mod federate;
mod ha_pushdown;
mod ha_query;
mod layering;
mod node_exporter;
mod promql_diff;
mod promql_errors;
mod query;
mod reload;
mod remote;
mod remote_write;
mod rules;
mod up;
mod util;
