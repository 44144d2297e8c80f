//! Silences: create, update, expire, query, and the muting check; garbage collection after
//! `--data.retention`; snapshots in Alertmanager's own format (delimited `silencepb.MeshSilence`
//! messages) so the same bytes serve as gossip payloads, with a merge that keeps the most
//! recently updated version of each silence.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use model::{Labels, MatchType};
use parking_lot::RwLock;

use crate::alert::is_valid_label_name;
use crate::matcher::Matcher;
use crate::proto::{self, ProtoError};
use crate::time::{Clock, Time};

/// Why a silence operation failed. Messages are Alertmanager's.
#[derive(Debug, thiserror::Error)]
pub enum SilenceError {
    #[error("silence not found")]
    NotFound,
    #[error("silence invalid: {0}")]
    Invalid(String),
    #[error("silence {0} already expired")]
    AlreadyExpired(String),
    #[error("decode silences")]
    Decode(#[from] ProtoError),
    #[error("{what} silences snapshot {path}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A silence's state at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SilenceState {
    Expired,
    Active,
    Pending,
}

impl SilenceState {
    pub fn as_str(self) -> &'static str {
        match self {
            SilenceState::Expired => "expired",
            SilenceState::Active => "active",
            SilenceState::Pending => "pending",
        }
    }
}

/// A silence.
#[derive(Debug, Clone, PartialEq)]
pub struct Silence {
    pub id: String,
    /// In the order given by the client.
    pub matchers: Vec<Matcher>,
    pub starts_at: Time,
    pub ends_at: Time,
    pub updated_at: Time,
    pub created_by: String,
    pub comment: String,
}

impl Silence {
    pub fn state(&self, now: Time) -> SilenceState {
        if self.ends_at <= now {
            SilenceState::Expired
        } else if self.starts_at <= now {
            SilenceState::Active
        } else {
            SilenceState::Pending
        }
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        self.matchers
            .iter()
            .all(|m| m.matches(labels.get_or_empty(&m.name)))
    }

    fn validate(&self) -> Result<(), SilenceError> {
        let inv = |m: String| Err(SilenceError::Invalid(m));
        if self.id.is_empty() {
            return inv("ID missing".into());
        }
        if self.matchers.is_empty() {
            return inv("at least one matcher required".into());
        }
        for (i, m) in self.matchers.iter().enumerate() {
            if !is_valid_label_name(&m.name) {
                return inv(format!(
                    "invalid label matcher {i}: invalid label name {:?}",
                    m.name
                ));
            }
        }
        if self.matchers.iter().all(|m| m.matches("")) {
            return inv("at least one matcher must not match the empty string".into());
        }
        if self.ends_at < self.starts_at {
            return inv("end time must not be before start time".into());
        }
        Ok(())
    }

    /// The `silencepb.Silence` message.
    pub fn encode(&self, out: &mut Vec<u8>) {
        proto::put_bytes(out, 1, self.id.as_bytes());
        for m in &self.matchers {
            proto::put_message(out, 2, |b| {
                let kind = match m.kind {
                    MatchType::Equal => 0,
                    MatchType::RegexMatch => 1,
                    MatchType::NotEqual => 2,
                    MatchType::RegexNoMatch => 3,
                };
                proto::put_uint(b, 1, kind);
                proto::put_bytes(b, 2, m.name.as_bytes());
                proto::put_bytes(b, 3, m.value.as_bytes());
            });
        }
        proto::put_timestamp(out, 3, self.starts_at);
        proto::put_timestamp(out, 4, self.ends_at);
        proto::put_timestamp(out, 5, self.updated_at);
        proto::put_bytes(out, 8, self.created_by.as_bytes());
        proto::put_bytes(out, 9, self.comment.as_bytes());
    }

    /// Decodes a `silencepb.Silence`; the legacy `comments` list fills in an empty
    /// `created_by`/`comment`, as Alertmanager upgrades old silences.
    pub fn decode(buf: &[u8]) -> Result<Silence, ProtoError> {
        let zero = Time::from_unix_nanos(0);
        let mut s = Silence {
            id: String::new(),
            matchers: Vec::new(),
            starts_at: zero,
            ends_at: zero,
            updated_at: zero,
            created_by: String::new(),
            comment: String::new(),
        };
        let mut legacy: Option<(String, String)> = None;
        proto::for_each_field(buf, |f, v| {
            match f {
                1 => s.id = v.string(f)?,
                2 => s.matchers.push(decode_matcher(v.bytes(f)?)?),
                3 => s.starts_at = v.timestamp(f)?,
                4 => s.ends_at = v.timestamp(f)?,
                5 => s.updated_at = v.timestamp(f)?,
                7 => {
                    let (mut author, mut comment) = (String::new(), String::new());
                    proto::for_each_field(v.bytes(f)?, |cf, cv| {
                        match cf {
                            1 => author = cv.string(cf)?,
                            2 => comment = cv.string(cf)?,
                            _ => {}
                        }
                        Ok(())
                    })?;
                    legacy.get_or_insert((author, comment));
                }
                8 => s.created_by = v.string(f)?,
                9 => s.comment = v.string(f)?,
                _ => {}
            }
            Ok(())
        })?;
        if let Some((author, comment)) = legacy
            && s.created_by.is_empty()
            && s.comment.is_empty()
        {
            s.created_by = author;
            s.comment = comment;
        }
        Ok(s)
    }
}

fn decode_matcher(buf: &[u8]) -> Result<Matcher, ProtoError> {
    let (mut kind, mut name, mut pattern) = (0u64, String::new(), String::new());
    proto::for_each_field(buf, |f, v| {
        match f {
            1 => kind = v.uint(f)?,
            2 => name = v.string(f)?,
            3 => pattern = v.string(f)?,
            _ => {}
        }
        Ok(())
    })?;
    let kind = match kind {
        1 => MatchType::RegexMatch,
        2 => MatchType::NotEqual,
        3 => MatchType::RegexNoMatch,
        _ => MatchType::Equal,
    };
    // A peer's regex we cannot compile matches nothing rather than poisoning the whole state.
    Ok(Matcher::new(kind, &name, &pattern).unwrap_or_else(|_| {
        Matcher::new(MatchType::RegexMatch, name, "$.^").expect("BUG: constant regex compiles")
    }))
}

#[derive(Debug, Clone)]
struct Entry {
    silence: Silence,
    expires_at: Time,
}

impl Entry {
    /// `silencepb.MeshSilence`.
    fn encode(&self, out: &mut Vec<u8>) {
        let mut msg = Vec::with_capacity(128);
        proto::put_message(&mut msg, 1, |b| self.silence.encode(b));
        proto::put_timestamp(&mut msg, 2, self.expires_at);
        proto::put_delimited(out, &msg);
    }

    fn decode(buf: &[u8]) -> Result<Entry, ProtoError> {
        let mut silence = None;
        let mut expires_at = Time::from_unix_nanos(0);
        proto::for_each_field(buf, |f, v| {
            match f {
                1 => silence = Some(Silence::decode(v.bytes(f)?)?),
                2 => expires_at = v.timestamp(f)?,
                _ => {}
            }
            Ok(())
        })?;
        let silence = silence.ok_or(ProtoError::Truncated)?;
        Ok(Entry {
            silence,
            expires_at,
        })
    }
}

/// Called with the encoded entry after each local change, for gossip.
pub type Broadcast = Arc<dyn Fn(Vec<u8>) + Send + Sync>;

/// The silences of one node. Thread-safe; reads take a shared lock.
pub struct Silences {
    state: RwLock<HashMap<String, Entry>>,
    clock: Clock,
    retention: Duration,
    broadcast: RwLock<Option<Broadcast>>,
}

impl Silences {
    pub fn new(clock: Clock, retention: Duration) -> Silences {
        Silences {
            state: RwLock::new(HashMap::new()),
            clock,
            retention,
            broadcast: RwLock::new(None),
        }
    }

    /// Sets the hook that receives each local change (a `MeshSilence`, length-prefixed).
    pub fn set_broadcast(&self, b: Broadcast) {
        *self.broadcast.write() = Some(b);
    }

    pub fn now(&self) -> Time {
        self.clock.now()
    }

    fn store(&self, mut s: Silence, now: Time) -> Result<(), SilenceError> {
        s.updated_at = now;
        s.validate()?;
        let e = Entry {
            expires_at: s.ends_at.add(self.retention),
            silence: s,
        };
        let mut buf = Vec::new();
        e.encode(&mut buf);
        self.state.write().insert(e.silence.id.clone(), e);
        if let Some(b) = self.broadcast.read().clone() {
            b(buf);
        }
        Ok(())
    }

    /// Creates or updates a silence and returns its ID. A silence whose matchers or active
    /// start time change is replaced by a new one (the old one expires), as Alertmanager does.
    pub fn set(&self, mut s: Silence) -> Result<String, SilenceError> {
        let now = self.clock.now();
        let prev = if s.id.is_empty() {
            None
        } else {
            Some(self.get(&s.id).ok_or(SilenceError::NotFound)?)
        };
        if let Some(prev) = prev {
            if can_update(&prev, &s, now) {
                let id = s.id.clone();
                self.store(s, now)?;
                return Ok(id);
            }
            if prev.state(now) != SilenceState::Expired {
                self.expire(&prev.id)?;
            }
        }
        s.id = uuid::Uuid::new_v4().to_string();
        if s.starts_at < now {
            s.starts_at = now;
        }
        let id = s.id.clone();
        self.store(s, now)?;
        Ok(id)
    }

    /// Expires a silence now (a pending one gets start = end = now).
    pub fn expire(&self, id: &str) -> Result<(), SilenceError> {
        let now = self.clock.now();
        let mut s = self.get(id).ok_or(SilenceError::NotFound)?;
        match s.state(now) {
            SilenceState::Expired => return Err(SilenceError::AlreadyExpired(id.to_string())),
            SilenceState::Active => s.ends_at = now,
            SilenceState::Pending => {
                s.starts_at = now;
                s.ends_at = now;
            }
        }
        self.store(s, now)
    }

    pub fn get(&self, id: &str) -> Option<Silence> {
        self.state.read().get(id).map(|e| e.silence.clone())
    }

    /// All silences with their state now.
    pub fn list(&self) -> Vec<(Silence, SilenceState)> {
        let now = self.clock.now();
        self.state
            .read()
            .values()
            .map(|e| (e.silence.clone(), e.silence.state(now)))
            .collect()
    }

    /// IDs of the active silences that match `labels`, sorted.
    pub fn mutes(&self, labels: &Labels) -> Vec<String> {
        let now = self.clock.now();
        let mut ids: Vec<String> = self
            .state
            .read()
            .values()
            .filter(|e| e.silence.state(now) == SilenceState::Active && e.silence.matches(labels))
            .map(|e| e.silence.id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// Counts by state (expired, active, pending).
    pub fn counts(&self) -> [(SilenceState, usize); 3] {
        let now = self.clock.now();
        let mut c = [0usize; 3];
        for e in self.state.read().values() {
            c[e.silence.state(now) as usize] += 1;
        }
        [
            (SilenceState::Expired, c[0]),
            (SilenceState::Active, c[1]),
            (SilenceState::Pending, c[2]),
        ]
    }

    /// Drops silences that expired more than the retention ago; returns how many.
    pub fn gc(&self) -> usize {
        let now = self.clock.now();
        let mut st = self.state.write();
        let before = st.len();
        st.retain(|_, e| e.expires_at > now);
        before - st.len()
    }

    /// The whole state: delimited `MeshSilence` messages (the snapshot and push-pull format).
    pub fn encode(&self) -> Vec<u8> {
        let st = self.state.read();
        let mut out = Vec::with_capacity(st.len() * 160);
        let mut ids: Vec<&String> = st.keys().collect();
        ids.sort();
        for id in ids {
            st[id].encode(&mut out);
        }
        out
    }

    /// Merges a peer's state or broadcast: an entry replaces ours when it was updated later.
    /// Returns how many entries changed.
    pub fn merge(&self, data: &[u8]) -> Result<usize, SilenceError> {
        let now = self.clock.now();
        let entries = proto::read_delimited(data)?
            .into_iter()
            .map(Entry::decode)
            .collect::<Result<Vec<_>, _>>()?;
        let mut st = self.state.write();
        let mut changed = 0;
        for e in entries {
            if e.expires_at < now {
                continue;
            }
            let newer = st
                .get(&e.silence.id)
                .is_none_or(|prev| prev.silence.updated_at < e.silence.updated_at);
            if newer {
                st.insert(e.silence.id.clone(), e);
                changed += 1;
            }
        }
        Ok(changed)
    }

    /// Writes the snapshot atomically (temporary file, then rename); returns its size.
    pub fn snapshot(&self, path: &Path) -> Result<usize, SilenceError> {
        let data = self.encode();
        write_atomic(path, &data).map_err(|source| SilenceError::Io {
            what: "write",
            path: path.display().to_string(),
            source,
        })?;
        Ok(data.len())
    }

    /// Loads a snapshot if the file exists.
    pub fn load(&self, path: &Path) -> Result<usize, SilenceError> {
        match std::fs::read(path) {
            Ok(data) => self.merge(&data),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(source) => Err(SilenceError::Io {
                what: "read",
                path: path.display().to_string(),
                source,
            }),
        }
    }
}

/// Whether `b` may overwrite `a` in place (otherwise a new silence replaces it).
fn can_update(a: &Silence, b: &Silence, now: Time) -> bool {
    if a.matchers != b.matchers {
        return false;
    }
    match a.state(now) {
        SilenceState::Active => {
            b.starts_at.unix_seconds() == a.starts_at.unix_seconds() && b.ends_at >= now
        }
        SilenceState::Pending => b.starts_at >= now,
        SilenceState::Expired => false,
    }
}

/// Writes `data` to `path` through a temporary file in the same directory.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matcher::parse_matchers;

    fn clock() -> Clock {
        Clock::manual(Time::parse("2024-01-01T00:00:00Z").unwrap())
    }

    fn sil(c: &Clock, m: &str, start: Duration, end: Duration) -> Silence {
        let now = c.now();
        Silence {
            id: String::new(),
            matchers: parse_matchers(m).unwrap(),
            starts_at: now.add(start),
            ends_at: now.add(end),
            updated_at: now,
            created_by: "me".into(),
            comment: "c".into(),
        }
    }

    #[test]
    fn lifecycle_pending_active_expired() {
        let c = clock();
        let s = Silences::new(c.clone(), Duration::from_secs(3600));
        let id = s
            .set(sil(
                &c,
                "a=b",
                Duration::from_secs(60),
                Duration::from_secs(120),
            ))
            .unwrap();
        let l = Labels::from_pairs([("a", "b")]);
        assert!(s.mutes(&l).is_empty());
        c.advance(Duration::from_secs(61));
        assert_eq!(s.mutes(&l), vec![id.clone()]);
        s.expire(&id).unwrap();
        assert!(s.mutes(&l).is_empty());
        assert!(matches!(
            s.expire(&id),
            Err(SilenceError::AlreadyExpired(_))
        ));
        c.advance(Duration::from_secs(3601));
        assert_eq!(s.gc(), 1);
        assert!(matches!(s.expire(&id), Err(SilenceError::NotFound)));
    }

    #[test]
    fn update_in_place_or_replace() {
        let c = clock();
        let s = Silences::new(c.clone(), Duration::from_secs(3600));
        let id = s
            .set(sil(&c, "a=b", Duration::ZERO, Duration::from_secs(120)))
            .unwrap();
        let mut upd = s.get(&id).unwrap();
        upd.ends_at = upd.ends_at.add(Duration::from_secs(60));
        assert_eq!(s.set(upd).unwrap(), id, "extending keeps the ID");
        let mut other = s.get(&id).unwrap();
        other.matchers = parse_matchers("a=c").unwrap();
        let new_id = s.set(other).unwrap();
        assert_ne!(new_id, id, "changing matchers replaces the silence");
        assert_eq!(s.get(&id).unwrap().state(c.now()), SilenceState::Expired);
        let mut unknown = sil(&c, "a=b", Duration::ZERO, Duration::from_secs(1));
        unknown.id = "nope".into();
        assert!(matches!(s.set(unknown), Err(SilenceError::NotFound)));
    }

    #[test]
    fn validation_messages() {
        let c = clock();
        let s = Silences::new(c.clone(), Duration::from_secs(3600));
        let err = s
            .set(sil(&c, "a=\"\"", Duration::ZERO, Duration::from_secs(1)))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "silence invalid: at least one matcher must not match the empty string"
        );
    }

    #[test]
    fn encode_merge_round_trip_and_newest_wins() {
        let c = clock();
        let a = Silences::new(c.clone(), Duration::from_secs(3600));
        let id = a
            .set(sil(
                &c,
                "a=~\"b.*\",c!=d",
                Duration::ZERO,
                Duration::from_secs(60),
            ))
            .unwrap();
        let b = Silences::new(c.clone(), Duration::from_secs(3600));
        assert_eq!(b.merge(&a.encode()).unwrap(), 1);
        assert_eq!(b.get(&id), a.get(&id));
        assert_eq!(b.merge(&a.encode()).unwrap(), 0, "idempotent");
        c.advance(Duration::from_secs(1));
        a.expire(&id).unwrap();
        assert_eq!(b.merge(&a.encode()).unwrap(), 1);
        assert_eq!(b.get(&id).unwrap().state(c.now()), SilenceState::Expired);
        assert_eq!(a.merge(&b.encode()).unwrap(), 0);
    }
}
