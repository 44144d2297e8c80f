//! Alertmanager API v2 (`openapi.yaml`), with the status codes and message shapes Alertmanager
//! 0.25 produces: go-swagger's `{"code","message"}` objects for malformed requests, plain JSON
//! strings for the handlers' own 400s. Responses are not enveloped.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use model::{Labels, MatchType};
use serde::{Deserialize, Serialize};

use crate::alert::{Alert, fingerprint_hex, is_valid_label_name};
use crate::app::App;
use crate::matcher::Matcher;
use crate::route::Route;
use crate::silence::{Silence, SilenceError, SilenceState};
use crate::time::Time;

pub(crate) fn json<T: Serialize + ?Sized>(status: StatusCode, v: &T) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        crate::gojson::to_vec(v),
    )
        .into_response()
}

/// go-swagger's error object.
fn swagger_error(status: StatusCode, code: u32, message: String) -> Response {
    #[derive(Serialize)]
    struct E {
        code: u32,
        message: String,
    }
    // go-openapi writes these with json.Marshal: no trailing newline.
    let mut body = crate::gojson::to_vec(&E { code, message });
    if body.last() == Some(&b'\n') {
        body.pop();
    }
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn bad_request(msg: impl Into<String>) -> Response {
    json(StatusCode::BAD_REQUEST, &msg.into())
}

pub(crate) fn query_pairs(q: &Option<String>) -> Vec<(String, String)> {
    form_urlencoded::parse(q.as_deref().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn require_json(headers: &HeaderMap) -> Option<Response> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if mime.eq_ignore_ascii_case("application/json") {
        return None;
    }
    let shown = if ct.is_empty() { "" } else { mime };
    Some(swagger_error(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        415,
        format!("unsupported media type {shown:?}, only [application/json] are allowed"),
    ))
}

/// A posted alert as both API versions decode it (times are read separately: v2 with
/// strfmt's layouts, v1 as Go's time.Time).
#[derive(Deserialize)]
pub(crate) struct PostableAlert {
    #[serde(default)]
    pub(crate) labels: Option<HashMap<String, String>>,
    #[serde(default)]
    pub(crate) annotations: Option<HashMap<String, String>>,
    #[serde(default, rename = "startsAt")]
    pub(crate) starts_at: Option<String>,
    #[serde(default, rename = "endsAt")]
    pub(crate) ends_at: Option<String>,
    #[serde(default, rename = "generatorURL")]
    pub(crate) generator_url: Option<String>,
}

fn parse_time(s: &Option<String>) -> Result<Option<Time>, String> {
    match s.as_deref() {
        None => Ok(None),
        Some(t) => {
            // strfmt's layouts and Go's errors; "" is the Unix epoch there.
            let t = crate::strfmt::parse_date_time(t)?;
            // Go's zero time (amtool sends it as `0001-01-01T00:00:00.000Z`) means "unset".
            Ok((t.to_rfc3339_nano() != crate::time::GO_ZERO_TIME).then_some(t))
        }
    }
}

/// model.Alert.Validate's checks, in its order; the labels and annotations when valid.
pub(crate) fn validate_alert(
    labels: &HashMap<String, String>,
    annotations: &HashMap<String, String>,
    starts_at: Time,
    ends_at: Time,
) -> Result<(Labels, Labels), String> {
    if ends_at < starts_at {
        return Err("start time must be before end time".to_string());
    }
    let l = validate_labels("label set", labels)?;
    if l.is_empty() {
        return Err("at least one label pair required".to_string());
    }
    let ann = validate_labels("annotations", annotations)?;
    Ok((l, ann))
}

fn validate_labels(what: &str, m: &HashMap<String, String>) -> Result<Labels, String> {
    for k in m.keys() {
        if !is_valid_label_name(k) {
            return Err(format!("invalid {what}: invalid name {k:?}"));
        }
    }
    Ok(Labels::from_pairs(m.iter()))
}

/// Whether Go's `url.ParseRequestURI` takes `s` (strfmt's `uri` format): an absolute URL or an
/// absolute path, no control characters, a numeric port, valid `%` escapes.
pub(crate) fn is_request_uri(s: &str) -> bool {
    if s.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return false;
    }
    if s == "*" {
        return true;
    }
    let no_frag = s.split_once('#').map_or(s, |(a, _)| a);
    let rest = no_frag.split_once('?').map_or(no_frag, |(a, _)| a);
    // Go's getScheme: letters, then letters, digits, `+-.`, up to `:`.
    let mut scheme_end = None;
    for (i, c) in rest.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' if i > 0 => {
                scheme_end = Some(i);
                break;
            }
            ':' => return false,
            _ => break,
        }
    }
    let rest = match scheme_end {
        Some(i) => &rest[i + 1..],
        None if rest.starts_with('/') => rest,
        None => return false,
    };
    let path = if scheme_end.is_some() && rest.starts_with("//") {
        let auth_end = rest[2..].find('/').map_or(rest.len(), |i| i + 2);
        let auth = &rest[2..auth_end];
        let host = auth.rsplit_once('@').map_or(auth, |(_, h)| h);
        let port = if host.starts_with('[') {
            match host.find(']') {
                Some(i) => host[i + 1..].strip_prefix(':'),
                None => return false,
            }
        } else {
            host.rsplit_once(':').map(|(_, p)| p)
        };
        if port.is_some_and(|p| !p.bytes().all(|b| b.is_ascii_digit())) {
            return false;
        }
        if host.bytes().any(|b| b == b' ' || b == b'%') {
            return false;
        }
        &rest[auth_end..]
    } else {
        rest
    };
    let b = path.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |j: usize| b.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !hex(i + 1) || !hex(i + 2) {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

/// `POST /api/v2/alerts`
pub async fn post_alerts(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = require_json(&headers) {
        return r;
    }
    let parse_err = |e: String| {
        swagger_error(
            StatusCode::BAD_REQUEST,
            400,
            format!("parsing alerts body from \"\" failed, because {e}"),
        )
    };
    // `null` decodes to no alerts in Go.
    let raw: Vec<PostableAlert> = match serde_json::from_slice::<Option<_>>(&body) {
        Ok(v) => v.unwrap_or_default(),
        Err(e) => return parse_err(e.to_string()),
    };
    // Times are read while decoding (400) before go-swagger validates (422).
    for a in &raw {
        if let Err(e) = parse_time(&a.starts_at).and(parse_time(&a.ends_at)) {
            return parse_err(e);
        }
    }
    for (i, a) in raw.iter().enumerate() {
        if let Some(u) = &a.generator_url
            && !u.is_empty()
            && !is_request_uri(u)
        {
            return swagger_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                601,
                format!("{i}.generatorURL in body must be of type uri: {u:?}"),
            );
        }
        if a.labels.is_none() {
            return swagger_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                602,
                format!("{i}.labels in body is required"),
            );
        }
    }
    let incoming = raw
        .into_iter()
        .map(|a| Incoming {
            // Checked above: times parse, labels are present.
            starts: parse_time(&a.starts_at).unwrap_or_default(),
            ends: parse_time(&a.ends_at).unwrap_or_default(),
            labels: a.labels.unwrap_or_default(),
            annotations: a.annotations.unwrap_or_default(),
            generator_url: a.generator_url.unwrap_or_default(),
        })
        .collect();
    let errors = accept_alerts(&app, incoming, false);
    if !errors.is_empty() {
        return bad_request(errors.join("; "));
    }
    StatusCode::OK.into_response()
}

/// A posted alert with its times read (Go's zero time as unset), as both API versions take
/// alerts in.
pub(crate) struct Incoming {
    pub(crate) labels: HashMap<String, String>,
    pub(crate) annotations: HashMap<String, String>,
    pub(crate) starts: Option<Time>,
    pub(crate) ends: Option<Time>,
    pub(crate) generator_url: String,
}

/// Takes posted alerts in as Alertmanager's API handlers do: a missing start is the end (or
/// now), a missing end is now plus `resolve_timeout` (and the alert times out), labels with
/// empty values are dropped, then model.Alert.Validate. Valid alerts go to the store; the
/// validation errors come back. Received and invalid alerts are counted per API version.
pub(crate) fn accept_alerts(app: &App, incoming: Vec<Incoming>, v1: bool) -> Vec<String> {
    use std::sync::atomic::Ordering::Relaxed;
    let core = app.core();
    let now = core.clock.now();
    let resolve_timeout = core.config().raw.global.resolve_timeout;
    let m = &core.metrics;
    let (firing, resolved, invalid) = if v1 {
        (
            &m.alerts_received_v1_firing,
            &m.alerts_received_v1_resolved,
            &m.alerts_invalid_v1,
        )
    } else {
        (
            &m.alerts_received_firing,
            &m.alerts_received_resolved,
            &m.alerts_invalid,
        )
    };
    let mut valid = Vec::with_capacity(incoming.len());
    let mut errors: Vec<String> = Vec::new();
    for mut a in incoming {
        let starts_at = a.starts.or(a.ends).unwrap_or(now);
        let (ends_at, timeout) = match a.ends {
            Some(e) => (e, false),
            None => (now.add(resolve_timeout), true),
        };
        if ends_at > now {
            firing.fetch_add(1, Relaxed);
        } else {
            resolved.fetch_add(1, Relaxed);
        }
        // compat: labels with empty values are dropped before validation.
        a.labels.retain(|_, v| !v.is_empty());
        match validate_alert(&a.labels, &a.annotations, starts_at, ends_at) {
            Ok((labels, annotations)) => valid.push(Alert {
                labels,
                annotations,
                starts_at,
                ends_at: Some(ends_at),
                generator_url: a.generator_url,
                updated_at: now,
                timeout,
            }),
            Err(e) => {
                invalid.fetch_add(1, Relaxed);
                errors.push(e);
            }
        }
    }
    core.put(valid);
    errors
}

#[derive(Serialize)]
struct ReceiverName<'a> {
    name: &'a str,
}

#[derive(Serialize, Clone)]
pub(crate) struct AlertStatus {
    #[serde(rename = "inhibitedBy")]
    pub(crate) inhibited_by: Vec<String>,
    #[serde(rename = "silencedBy")]
    pub(crate) silenced_by: Vec<String>,
    pub(crate) state: &'static str,
}

#[derive(Serialize)]
struct GettableAlert<'a> {
    annotations: &'a Labels,
    #[serde(rename = "endsAt")]
    ends_at: String,
    fingerprint: String,
    receivers: Vec<ReceiverName<'a>>,
    #[serde(rename = "startsAt")]
    starts_at: String,
    status: AlertStatus,
    #[serde(rename = "updatedAt")]
    updated_at: String,
    #[serde(rename = "generatorURL", skip_serializing_if = "str::is_empty")]
    generator_url: &'a str,
    labels: &'a Labels,
}

/// Alertmanager's filter semantics: an empty-valued matcher is satisfied by a missing label.
pub(crate) fn matches_filter(matchers: &[Matcher], get: impl Fn(&str) -> Option<String>) -> bool {
    matchers.iter().all(|m| {
        let v = get(&m.name);
        let negative = matches!(m.kind, MatchType::NotEqual | MatchType::RegexNoMatch);
        if m.value.is_empty() && (v.is_some() == negative) {
            return true;
        }
        m.matches(v.as_deref().unwrap_or(""))
    })
}

struct AlertQuery {
    active: bool,
    silenced: bool,
    inhibited: bool,
    filter: Vec<Matcher>,
    receiver: Option<model::GoRegex>,
}

/// The query, or the message of a 400 answer.
fn parse_alert_query(q: &Option<String>) -> Result<AlertQuery, String> {
    let mut out = AlertQuery {
        active: true,
        silenced: true,
        inhibited: true,
        filter: Vec::new(),
        receiver: None,
    };
    for (k, v) in query_pairs(q) {
        let b = || matches!(v.as_str(), "true" | "1" | "t" | "T" | "TRUE" | "True");
        match k.as_str() {
            "active" => out.active = b(),
            "silenced" => out.silenced = b(),
            "inhibited" => out.inhibited = b(),
            "filter" => out
                .filter
                .push(Matcher::parse(&v).map_err(|e| e.to_string())?),
            "receiver" if !v.is_empty() => {
                out.receiver = Some(
                    crate::matcher::compile_regex(&v)
                        .map_err(|e| format!("failed to parse receiver param: {e}"))?,
                );
            }
            _ => {}
        }
    }
    Ok(out)
}

pub(crate) fn alert_status(app: &App, labels: &Labels, now: Time) -> AlertStatus {
    let core = app.core();
    core.metrics
        .silences_queries
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let silenced_by = core.silences.mutes(labels);
    let inhibited_by: Vec<String> = core
        .runtime()
        .inhibitor
        .mutes(labels, now)
        .map(fingerprint_hex)
        .into_iter()
        .collect();
    let state = if silenced_by.is_empty() && inhibited_by.is_empty() {
        "active"
    } else {
        "suppressed"
    };
    AlertStatus {
        inhibited_by,
        silenced_by,
        state,
    }
}

/// Whether an alert passes the query; its status if so.
fn select(
    app: &App,
    q: &AlertQuery,
    a: &Alert,
    receivers: &[&str],
    now: Time,
) -> Option<AlertStatus> {
    if let Some(re) = &q.receiver
        && !receivers.iter().any(|r| re.is_match(r))
    {
        return None;
    }
    if !matches_filter(&q.filter, |n| a.labels.get(n).map(str::to_string)) {
        return None;
    }
    if a.ends_at.is_some_and(|e| e < now) {
        return None;
    }
    let status = alert_status(app, &a.labels, now);
    let suppressed = status.state == "suppressed";
    if (!q.active && !suppressed)
        || (!q.silenced && !status.silenced_by.is_empty())
        || (!q.inhibited && !status.inhibited_by.is_empty())
    {
        return None;
    }
    Some(status)
}

fn gettable<'a>(a: &'a Alert, status: AlertStatus, receivers: &[&'a str]) -> GettableAlert<'a> {
    GettableAlert {
        annotations: &a.annotations,
        ends_at: a.ends_at.map(|t| t.to_rfc3339_millis()).unwrap_or_default(),
        fingerprint: fingerprint_hex(a.fingerprint()),
        receivers: receivers.iter().map(|name| ReceiverName { name }).collect(),
        starts_at: a.starts_at.to_rfc3339_millis(),
        status,
        updated_at: a.updated_at.to_rfc3339_millis(),
        generator_url: &a.generator_url,
        labels: &a.labels,
    }
}

pub(crate) fn receivers_of(route: &std::sync::Arc<Route>, labels: &Labels) -> Vec<String> {
    route
        .match_labels(labels)
        .iter()
        .map(|r| r.receiver.clone())
        .collect()
}

/// `GET /api/v2/alerts`
pub async fn get_alerts(State(app): State<App>, RawQuery(q): RawQuery) -> Response {
    let q = match parse_alert_query(&q) {
        Ok(q) => q,
        Err(msg) => return bad_request(msg),
    };
    let core = app.core();
    let now = core.clock.now();
    let route = core.config().route.clone();
    let mut alerts = core.alerts();
    alerts.sort_by_key(|a| fingerprint_hex(a.fingerprint()));
    let recv: Vec<Vec<String>> = alerts
        .iter()
        .map(|a| receivers_of(&route, &a.labels))
        .collect();
    let mut out = Vec::with_capacity(alerts.len());
    for (a, r) in alerts.iter().zip(&recv) {
        let names: Vec<&str> = r.iter().map(String::as_str).collect();
        if let Some(st) = select(&app, &q, a, &names, now) {
            out.push(gettable(a, st, &names));
        }
    }
    json(StatusCode::OK, &out)
}

/// `GET /api/v2/alerts/groups`
pub async fn get_alert_groups(State(app): State<App>, RawQuery(q): RawQuery) -> Response {
    #[derive(Serialize)]
    struct Group<'a> {
        alerts: Vec<GettableAlert<'a>>,
        labels: &'a Labels,
        receiver: ReceiverName<'a>,
    }
    let q = match parse_alert_query(&q) {
        Ok(q) => q,
        Err(msg) => return bad_request(msg),
    };
    let core = app.core();
    let now = core.clock.now();
    let groups = core.runtime().dispatcher.groups();
    // As Alertmanager's Dispatcher.Groups: an alert's receivers are those of the groups that
    // passed the receiver filter and hold it (passing the alert filters), sorted.
    let rq = AlertQuery {
        receiver: None,
        filter: q.filter.clone(),
        ..q
    };
    type Selected<'g> = (&'g crate::dispatch::AggrGroup, Vec<(Alert, AlertStatus)>);
    let mut selected: Vec<Selected<'_>> = Vec::new();
    let mut receivers: HashMap<u64, Vec<String>> = HashMap::new();
    for g in &groups {
        if let Some(re) = &q.receiver
            && !re.is_match(&g.route.receiver)
        {
            continue;
        }
        let mut alerts = g.alerts();
        alerts.sort_by(crate::alert::alert_order);
        let mut kept = Vec::new();
        for a in alerts {
            if let Some(st) = select(&app, &rq, &a, &[], now) {
                receivers
                    .entry(a.fingerprint())
                    .or_default()
                    .push(g.route.receiver.clone());
                kept.push((a, st));
            }
        }
        selected.push((g, kept));
    }
    for r in receivers.values_mut() {
        r.sort();
    }
    let names_of = |a: &Alert| -> Vec<&str> {
        receivers
            .get(&a.fingerprint())
            .map(|r| r.iter().map(String::as_str).collect())
            .unwrap_or_default()
    };
    let mut out: Vec<Group<'_>> = Vec::new();
    for (g, kept) in &selected {
        let mut list = Vec::new();
        for (a, st) in kept {
            list.push(gettable(a, st.clone(), &names_of(a)));
        }
        if !list.is_empty() {
            out.push(Group {
                alerts: list,
                labels: &g.labels,
                receiver: ReceiverName {
                    name: &g.route.receiver,
                },
            });
        }
    }
    out.sort_by(|a, b| {
        if a.labels != b.labels {
            if crate::alert::labelset_before(a.labels, b.labels) {
                std::cmp::Ordering::Less
            } else {
                std::cmp::Ordering::Greater
            }
        } else {
            a.receiver.name.cmp(b.receiver.name)
        }
    });
    json(StatusCode::OK, &out)
}

#[derive(Serialize, Deserialize)]
struct ApiMatcher {
    #[serde(rename = "isEqual", default = "default_true")]
    is_equal: bool,
    #[serde(rename = "isRegex")]
    is_regex: Option<bool>,
    name: Option<String>,
    value: Option<String>,
}

fn default_true() -> bool {
    true
}

#[derive(Serialize)]
struct SilenceStatus {
    state: &'static str,
}

#[derive(Serialize)]
struct GettableSilence<'a> {
    id: &'a str,
    status: SilenceStatus,
    #[serde(rename = "updatedAt")]
    updated_at: String,
    comment: &'a str,
    #[serde(rename = "createdBy")]
    created_by: &'a str,
    #[serde(rename = "endsAt")]
    ends_at: String,
    matchers: Vec<ApiMatcher>,
    #[serde(rename = "startsAt")]
    starts_at: String,
}

fn gettable_silence(s: &Silence, st: SilenceState) -> GettableSilence<'_> {
    GettableSilence {
        id: &s.id,
        status: SilenceStatus { state: st.as_str() },
        updated_at: s.updated_at.to_rfc3339_millis(),
        comment: &s.comment,
        created_by: &s.created_by,
        ends_at: s.ends_at.to_rfc3339_millis(),
        matchers: s
            .matchers
            .iter()
            .map(|m| ApiMatcher {
                is_equal: m.is_equal(),
                is_regex: Some(m.is_regex()),
                name: Some(m.name.clone()),
                value: Some(m.value.clone()),
            })
            .collect(),
        starts_at: s.starts_at.to_rfc3339_millis(),
    }
}

/// The silences whose matchers satisfy `filter`, in the order both API versions list them:
/// active by soonest end, then pending by soonest start, then expired by latest end.
pub(crate) fn listed_silences(app: &App, filter: &[Matcher]) -> Vec<(Silence, SilenceState)> {
    let mut list: Vec<(Silence, SilenceState)> = app
        .core()
        .silences
        .list()
        .into_iter()
        .filter(|(s, _)| {
            matches_filter(filter, |n| {
                s.matchers
                    .iter()
                    .find(|m| m.name == n)
                    .map(|m| m.value.clone())
            })
        })
        .collect();
    let rank = |s: &SilenceState| match s {
        SilenceState::Active => 0,
        SilenceState::Pending => 1,
        SilenceState::Expired => 2,
    };
    list.sort_by(|(a, sa), (b, sb)| {
        rank(sa).cmp(&rank(sb)).then_with(|| match sa {
            SilenceState::Active => a.ends_at.cmp(&b.ends_at),
            SilenceState::Pending => a.starts_at.cmp(&b.starts_at),
            SilenceState::Expired => b.ends_at.cmp(&a.ends_at),
        })
    });
    list
}

/// `GET /api/v2/silences`
pub async fn get_silences(State(app): State<App>, RawQuery(q): RawQuery) -> Response {
    let mut filter = Vec::new();
    for (k, v) in query_pairs(&q) {
        if k == "filter" {
            match Matcher::parse(&v) {
                Ok(m) => filter.push(m),
                Err(e) => return bad_request(e.to_string()),
            }
        }
    }
    let list = listed_silences(&app, &filter);
    let out: Vec<GettableSilence<'_>> = list
        .iter()
        .map(|(s, st)| gettable_silence(s, *st))
        .collect();
    json(StatusCode::OK, &out)
}

#[derive(Deserialize)]
struct PostableSilence {
    #[serde(default)]
    id: Option<String>,
    matchers: Option<Vec<ApiMatcher>>,
    #[serde(rename = "startsAt")]
    starts_at: Option<String>,
    #[serde(rename = "endsAt")]
    ends_at: Option<String>,
    #[serde(rename = "createdBy")]
    created_by: Option<String>,
    comment: Option<String>,
}

fn required(field: &str) -> Response {
    swagger_error(
        StatusCode::UNPROCESSABLE_ENTITY,
        602,
        format!("{field} in body is required"),
    )
}

/// `POST /api/v2/silences`
pub async fn post_silences(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = require_json(&headers) {
        return r;
    }
    let ps: PostableSilence = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return swagger_error(
                StatusCode::BAD_REQUEST,
                400,
                format!("parsing silence body from \"\" failed, because {e}"),
            );
        }
    };
    // Times are read while decoding (400), then go-swagger validates the fields in the order
    // of its generated code (alphabetical) and reports the first failure (422).
    let parse = |t: &Option<String>| match t {
        Some(t) => crate::strfmt::parse_date_time(t).map(Some),
        None => Ok(None),
    };
    let (starts_at, ends_at) = match (parse(&ps.starts_at), parse(&ps.ends_at)) {
        (Ok(s), Ok(e)) => (s, e),
        (Err(e), _) | (_, Err(e)) => {
            return swagger_error(
                StatusCode::BAD_REQUEST,
                400,
                format!("parsing silence body from \"\" failed, because {e}"),
            );
        }
    };
    let Some(comment) = ps.comment else {
        return required("comment");
    };
    let Some(created_by) = ps.created_by else {
        return required("createdBy");
    };
    let Some(ends_at) = ends_at else {
        return required("endsAt");
    };
    let Some(api_matchers) = ps.matchers else {
        return required("matchers");
    };
    if api_matchers.is_empty() {
        return swagger_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            612,
            "matchers in body should have at least 1 items".to_string(),
        );
    }
    for (i, m) in api_matchers.iter().enumerate() {
        let missing = if m.is_regex.is_none() {
            "isRegex"
        } else if m.name.is_none() {
            "name"
        } else if m.value.is_none() {
            "value"
        } else {
            continue;
        };
        return required(&format!("matchers.{i}.{missing}"));
    }
    let Some(starts_at) = starts_at else {
        return required("startsAt");
    };
    // Alertmanager checks the times before the silence itself (matchers) is validated.
    if starts_at >= ends_at {
        return bad_request("Failed to create silence: start time must be before end time");
    }
    let silences = &app.core().silences;
    if ends_at < silences.now() {
        return bad_request("Failed to create silence: end time can't be in the past");
    }
    let mut matchers = Vec::with_capacity(api_matchers.len());
    for (i, m) in api_matchers.iter().enumerate() {
        let (Some(name), Some(value), Some(is_regex)) = (&m.name, &m.value, m.is_regex) else {
            return required(&format!("matchers.{i}.name"));
        };
        let kind = match (is_regex, m.is_equal) {
            (false, true) => MatchType::Equal,
            (false, false) => MatchType::NotEqual,
            (true, true) => MatchType::RegexMatch,
            (true, false) => MatchType::RegexNoMatch,
        };
        match Matcher::new(kind, name, value) {
            Ok(m) => matchers.push(m),
            Err(e) => {
                // Silence validation compiles the pattern as given (not `^(?:…)$`), so Go's
                // error names the bare pattern.
                let e = model::GoRegex::new_with_anchor(value, model::regex::Anchor::Alertmanager)
                    .err()
                    .map_or_else(|| e.to_string(), |re| re.to_string());
                return bad_request(format!(
                    "silence invalid: invalid label matcher {i}: invalid regular expression {value:?}: {e}"
                ));
            }
        }
    }
    let sil = Silence {
        id: ps.id.unwrap_or_default(),
        matchers,
        starts_at,
        ends_at,
        updated_at: silences.now(),
        created_by,
        comment,
    };
    match silences.set(sil) {
        Ok(id) => {
            #[derive(Serialize)]
            struct Ok<'a> {
                #[serde(rename = "silenceID")]
                silence_id: &'a str,
            }
            json(StatusCode::OK, &Ok { silence_id: &id })
        }
        Err(SilenceError::NotFound) => {
            json(StatusCode::NOT_FOUND, &SilenceError::NotFound.to_string())
        }
        Err(e) => bad_request(e.to_string()),
    }
}

fn check_uuid(id: &str) -> Option<Response> {
    if uuid::Uuid::parse_str(id).is_ok() {
        return None;
    }
    Some(swagger_error(
        StatusCode::UNPROCESSABLE_ENTITY,
        601,
        format!("silenceID in path must be of type uuid: {id:?}"),
    ))
}

/// `GET /api/v2/silence/{id}`
pub async fn get_silence(State(app): State<App>, Path(id): Path<String>) -> Response {
    if let Some(r) = check_uuid(&id) {
        return r;
    }
    let silences = &app.core().silences;
    match silences.get(&id) {
        Some(s) => {
            let st = s.state(silences.now());
            json(StatusCode::OK, &gettable_silence(&s, st))
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `DELETE /api/v2/silence/{id}`
pub async fn delete_silence(State(app): State<App>, Path(id): Path<String>) -> Response {
    if let Some(r) = check_uuid(&id) {
        return r;
    }
    match app.core().silences.expire(&id) {
        // compat: expiring an expired silence succeeds in Alertmanager 0.25 (checked against
        // Debian's build); an unknown one is a 500.
        Ok(()) | Err(SilenceError::AlreadyExpired(_)) => StatusCode::OK.into_response(),
        Err(e) => json(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// `GET /api/v2/receivers`
pub async fn get_receivers(State(app): State<App>) -> Response {
    let cfg = app.core().config();
    let out: Vec<ReceiverName<'_>> = cfg
        .receivers
        .iter()
        .map(|r| ReceiverName { name: &r.name })
        .collect();
    json(StatusCode::OK, &out)
}

/// `GET /api/v2/status`
pub async fn get_status(State(app): State<App>) -> Response {
    #[derive(Serialize)]
    struct PeerOut {
        address: String,
        name: String,
    }
    #[derive(Serialize)]
    struct Cluster {
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        peers: Vec<PeerOut>,
        status: &'static str,
    }
    #[derive(Serialize)]
    struct ConfigOut {
        original: String,
    }
    #[derive(Serialize)]
    struct Version {
        branch: &'static str,
        #[serde(rename = "buildDate")]
        build_date: &'static str,
        #[serde(rename = "buildUser")]
        build_user: &'static str,
        #[serde(rename = "goVersion")]
        go_version: &'static str,
        revision: &'static str,
        version: &'static str,
    }
    #[derive(Serialize)]
    struct Status {
        cluster: Cluster,
        config: ConfigOut,
        uptime: String,
        #[serde(rename = "versionInfo")]
        version_info: Version,
    }
    let cfg = app.core().config();
    json(
        StatusCode::OK,
        &Status {
            cluster: match app.cluster() {
                None => Cluster {
                    name: None,
                    peers: Vec::new(),
                    status: "disabled",
                },
                Some(c) => Cluster {
                    name: Some(c.name().to_string()),
                    peers: c
                        .members()
                        .into_iter()
                        .map(|m| PeerOut {
                            address: m.addr.to_string(),
                            name: m.name,
                        })
                        .collect(),
                    status: c.status(),
                },
            },
            config: ConfigOut {
                original: cfg.to_yaml(),
            },
            uptime: app.start_time().to_rfc3339_millis(),
            version_info: Version {
                branch: "main",
                build_date: "",
                build_user: "vigil",
                go_version: "rust",
                revision: "unknown",
                version: env!("CARGO_PKG_VERSION"),
            },
        },
    )
}

/// go-swagger's 405 for a known path: `method PUT is not allowed, but [GET,POST] are`.
pub fn method_not_allowed(
    allowed: &'static str,
) -> impl Fn(axum::http::Method) -> std::future::Ready<Response> + Clone + Send + Sync + 'static {
    move |m: axum::http::Method| {
        std::future::ready(swagger_error(
            StatusCode::METHOD_NOT_ALLOWED,
            405,
            format!("method {m} is not allowed, but [{allowed}] are"),
        ))
    }
}

/// Unknown paths under `/api/v2`.
pub async fn not_found(axum::extract::OriginalUri(uri): axum::extract::OriginalUri) -> Response {
    swagger_error(
        StatusCode::NOT_FOUND,
        404,
        format!("path {} was not found", uri.path()),
    )
}

pub async fn healthy() -> &'static str {
    "OK"
}

pub async fn ready(State(app): State<App>) -> Response {
    if app.is_ready() {
        "OK".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response()
    }
}

pub async fn reload(State(app): State<App>) -> Response {
    match app.reload() {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e}"),
        )
            .into_response(),
    }
}

pub async fn metrics(State(app): State<App>) -> Response {
    web::metrics::response(app.render_metrics())
}
