//! The notification log: for each (group key, receiver integration), which alerts were firing
//! and resolved at the last successful notification, and when. The notify pipeline consults it
//! to send only what changed (or repeats after `repeat_interval`). Snapshots and gossip use
//! Alertmanager's `nflogpb.MeshEntry` messages, merged by newest timestamp.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use crate::proto::{self, ProtoError};
use crate::silence::write_atomic;
use crate::time::{Clock, Time};

/// Why the log could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum NflogError {
    #[error("decode notification log")]
    Decode(#[from] ProtoError),
    #[error("{what} notification log snapshot {path}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// One integration of one receiver: `nflogpb.Receiver`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReceiverKey {
    pub group_name: String,
    pub integration: String,
    pub idx: u32,
}

impl ReceiverKey {
    fn encode(&self, out: &mut Vec<u8>) {
        proto::put_bytes(out, 1, self.group_name.as_bytes());
        proto::put_bytes(out, 2, self.integration.as_bytes());
        proto::put_uint(out, 3, u64::from(self.idx));
    }
}

impl std::fmt::Display for ReceiverKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.group_name, self.integration, self.idx)
    }
}

/// What was last sent for a group to an integration.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub group_key: String,
    pub receiver: ReceiverKey,
    pub timestamp: Time,
    pub firing: Vec<u64>,
    pub resolved: Vec<u64>,
    pub expires_at: Time,
}

impl Entry {
    fn key(&self) -> String {
        state_key(&self.group_key, &self.receiver)
    }

    /// Whether every hash of `subset` was firing at the last notification.
    pub fn is_firing_subset(&self, subset: &[u64]) -> bool {
        subset.iter().all(|h| self.firing.contains(h))
    }

    pub fn is_resolved_subset(&self, subset: &[u64]) -> bool {
        subset.iter().all(|h| self.resolved.contains(h))
    }

    /// `nflogpb.MeshEntry`, length-prefixed.
    fn encode(&self, out: &mut Vec<u8>) {
        let mut msg = Vec::with_capacity(96 + 10 * (self.firing.len() + self.resolved.len()));
        proto::put_message(&mut msg, 1, |b| {
            proto::put_bytes(b, 1, self.group_key.as_bytes());
            proto::put_message(b, 2, |r| self.receiver.encode(r));
            proto::put_uint(b, 4, u64::from(self.firing.is_empty()));
            proto::put_timestamp(b, 5, self.timestamp);
            proto::put_packed_uint(b, 6, &self.firing);
            proto::put_packed_uint(b, 7, &self.resolved);
        });
        proto::put_timestamp(&mut msg, 2, self.expires_at);
        proto::put_delimited(out, &msg);
    }

    fn decode(buf: &[u8]) -> Result<Entry, ProtoError> {
        let zero = Time::from_unix_nanos(0);
        let mut e = Entry {
            group_key: String::new(),
            receiver: ReceiverKey {
                group_name: String::new(),
                integration: String::new(),
                idx: 0,
            },
            timestamp: zero,
            firing: Vec::new(),
            resolved: Vec::new(),
            expires_at: zero,
        };
        let mut seen_entry = false;
        proto::for_each_field(buf, |f, v| {
            match f {
                1 => {
                    seen_entry = true;
                    proto::for_each_field(v.bytes(f)?, |g, w| {
                        match g {
                            1 => e.group_key = w.string(g)?,
                            2 => e.receiver = decode_receiver(w.bytes(g)?)?,
                            5 => e.timestamp = w.timestamp(g)?,
                            6 => w.uints_into(g, &mut e.firing)?,
                            7 => w.uints_into(g, &mut e.resolved)?,
                            _ => {}
                        }
                        Ok(())
                    })?;
                }
                2 => e.expires_at = v.timestamp(f)?,
                _ => {}
            }
            Ok(())
        })?;
        if !seen_entry {
            return Err(ProtoError::Truncated);
        }
        Ok(e)
    }
}

fn decode_receiver(buf: &[u8]) -> Result<ReceiverKey, ProtoError> {
    let mut r = ReceiverKey {
        group_name: String::new(),
        integration: String::new(),
        idx: 0,
    };
    proto::for_each_field(buf, |f, v| {
        match f {
            1 => r.group_name = v.string(f)?,
            2 => r.integration = v.string(f)?,
            3 => r.idx = u32::try_from(v.uint(f)?).unwrap_or(u32::MAX),
            _ => {}
        }
        Ok(())
    })?;
    Ok(r)
}

fn state_key(group_key: &str, r: &ReceiverKey) -> String {
    format!("{group_key}:{r}")
}

/// Called with the encoded entry after each local change, for gossip.
pub type Broadcast = Arc<dyn Fn(Vec<u8>) + Send + Sync>;

/// The notification log of one node.
pub struct Nflog {
    state: Mutex<HashMap<String, Entry>>,
    clock: Clock,
    retention: Duration,
    broadcast: RwLock<Option<Broadcast>>,
}

impl Nflog {
    pub fn new(clock: Clock, retention: Duration) -> Nflog {
        Nflog {
            state: Mutex::new(HashMap::new()),
            clock,
            retention,
            broadcast: RwLock::new(None),
        }
    }

    pub fn set_broadcast(&self, b: Broadcast) {
        *self.broadcast.write() = Some(b);
    }

    /// The entry for a group and integration, if any.
    pub fn query(&self, group_key: &str, receiver: &ReceiverKey) -> Option<Entry> {
        self.state
            .lock()
            .get(&state_key(group_key, receiver))
            .cloned()
    }

    /// Records a successful notification.
    pub fn log(
        &self,
        receiver: &ReceiverKey,
        group_key: &str,
        firing: Vec<u64>,
        resolved: Vec<u64>,
    ) {
        let now = self.clock.now();
        let e = Entry {
            group_key: group_key.to_string(),
            receiver: receiver.clone(),
            timestamp: now,
            firing,
            resolved,
            expires_at: now.add(self.retention),
        };
        let key = e.key();
        {
            let mut st = self.state.lock();
            // A peer's entry from the future (clock drift) is not overwritten.
            if st.get(&key).is_some_and(|prev| prev.timestamp > now) {
                return;
            }
            st.insert(key, e.clone());
        }
        if let Some(b) = self.broadcast.read().clone() {
            let mut buf = Vec::new();
            e.encode(&mut buf);
            b(buf);
        }
    }

    pub fn len(&self) -> usize {
        self.state.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops expired entries; returns how many.
    pub fn gc(&self) -> usize {
        let now = self.clock.now();
        let mut st = self.state.lock();
        let before = st.len();
        st.retain(|_, e| e.expires_at > now);
        before - st.len()
    }

    /// The whole state as delimited `MeshEntry` messages.
    pub fn encode(&self) -> Vec<u8> {
        let st = self.state.lock();
        let mut keys: Vec<&String> = st.keys().collect();
        keys.sort();
        let mut out = Vec::with_capacity(st.len() * 128);
        for k in keys {
            st[k].encode(&mut out);
        }
        out
    }

    /// Merges a peer's state: an entry replaces ours when its timestamp is newer. Returns how
    /// many entries changed.
    pub fn merge(&self, data: &[u8]) -> Result<usize, NflogError> {
        let now = self.clock.now();
        let entries = proto::read_delimited(data)?
            .into_iter()
            .map(Entry::decode)
            .collect::<Result<Vec<_>, _>>()?;
        let mut st = self.state.lock();
        let mut changed = 0;
        for e in entries {
            if e.expires_at < now {
                continue;
            }
            let key = e.key();
            if st.get(&key).is_none_or(|prev| prev.timestamp < e.timestamp) {
                st.insert(key, e);
                changed += 1;
            }
        }
        Ok(changed)
    }

    pub fn snapshot(&self, path: &Path) -> Result<usize, NflogError> {
        let data = self.encode();
        write_atomic(path, &data).map_err(|source| NflogError::Io {
            what: "write",
            path: path.display().to_string(),
            source,
        })?;
        Ok(data.len())
    }

    pub fn load(&self, path: &Path) -> Result<usize, NflogError> {
        match std::fs::read(path) {
            Ok(data) => self.merge(&data),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(source) => Err(NflogError::Io {
                what: "read",
                path: path.display().to_string(),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recv() -> ReceiverKey {
        ReceiverKey {
            group_name: "web".into(),
            integration: "webhook".into(),
            idx: 0,
        }
    }

    #[test]
    fn log_query_merge_gc() {
        let c = Clock::manual(Time::parse("2024-01-01T00:00:00Z").unwrap());
        let a = Nflog::new(c.clone(), Duration::from_secs(60));
        a.log(&recv(), "{}:{}", vec![1, u64::MAX], vec![3]);
        let e = a.query("{}:{}", &recv()).unwrap();
        assert_eq!(e.firing, vec![1, u64::MAX]);
        assert!(e.is_firing_subset(&[1]) && !e.is_firing_subset(&[2]));
        let b = Nflog::new(c.clone(), Duration::from_secs(60));
        assert_eq!(b.merge(&a.encode()).unwrap(), 1);
        assert_eq!(b.query("{}:{}", &recv()), Some(e));
        assert_eq!(b.merge(&a.encode()).unwrap(), 0);
        c.advance(Duration::from_secs(61));
        assert_eq!(b.gc(), 1);
        assert!(b.is_empty());
        assert_eq!(
            b.merge(&a.encode()).unwrap(),
            0,
            "expired entries are not merged"
        );
    }

    #[test]
    fn truncated_input_is_an_error() {
        let c = Clock::manual(Time::parse("2024-01-01T00:00:00Z").unwrap());
        let a = Nflog::new(c.clone(), Duration::from_secs(60));
        a.log(&recv(), "k", vec![1], vec![]);
        let data = a.encode();
        for n in 1..data.len() {
            assert!(a.merge(&data[..n]).is_err(), "prefix {n}");
        }
    }
}
