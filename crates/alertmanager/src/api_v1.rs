//! Alertmanager's API v1, which 0.25 still serves (Prometheus's `api_version: v1`, old tools):
//! `{"status":"success","data":…}` envelopes, `bad_data` errors, CORS headers on every answer,
//! Go's `time.Time` JSON (RFC 3339 with nanoseconds, offsets kept), Go's JSON decoding errors.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::alert::{Alert, fingerprint_hex, is_valid_label_name};
use crate::api::{
    Incoming, PostableAlert, accept_alerts, alert_status, listed_silences, matches_filter,
    query_pairs, receivers_of,
};
use crate::app::App;
use crate::matcher::{Matcher, parse_matchers};
use crate::silence::{Silence, SilenceError, SilenceState};
use crate::time::Time;
use model::{Labels, MatchType};

const CORS: [(&str, &str); 5] = [
    (
        "access-control-allow-headers",
        "Accept, Authorization, Content-Type, Origin",
    ),
    ("access-control-allow-methods", "GET, POST, DELETE, OPTIONS"),
    ("access-control-allow-origin", "*"),
    ("access-control-expose-headers", "Date"),
    ("cache-control", "no-cache, no-store, must-revalidate"),
];

fn with_cors(mut r: Response) -> Response {
    for (k, v) in CORS {
        r.headers_mut().insert(k, HeaderValue::from_static(v));
    }
    r
}

fn envelope<T: Serialize>(status: StatusCode, body: &T) -> Response {
    let mut b = crate::gojson::to_vec(body);
    // json.Marshal: no trailing newline.
    if b.last() == Some(&b'\n') {
        b.pop();
    }
    with_cors((status, [(header::CONTENT_TYPE, "application/json")], b).into_response())
}

fn success<T: Serialize>(data: Option<T>) -> Response {
    #[derive(Serialize)]
    struct Ok<T> {
        status: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        data: Option<T>,
    }
    envelope(
        StatusCode::OK,
        &Ok {
            status: "success",
            data,
        },
    )
}

fn bad_data(msg: impl Into<String>) -> Response {
    #[derive(Serialize)]
    struct Err {
        status: &'static str,
        #[serde(rename = "errorType")]
        error_type: &'static str,
        error: String,
    }
    envelope(
        StatusCode::BAD_REQUEST,
        &Err {
            status: "error",
            error_type: "bad_data",
            error: msg.into(),
        },
    )
}

/// Go's `encoding/json` message for a body serde could not read, where it is simple to tell:
/// syntax errors, an empty body, and a top-level value of the wrong kind.
fn go_json_error(body: &[u8], go_type: &str, e: &serde_json::Error) -> String {
    let trimmed = body.iter().position(|b| !b.is_ascii_whitespace());
    let Some(start) = trimmed else {
        return "EOF".to_string();
    };
    if e.is_eof() {
        return "unexpected EOF".to_string();
    }
    if e.is_syntax() {
        if e.line() == 1
            && e.column() > 0
            && let Some(&c) = body.get(e.column() - 1)
            && c.is_ascii_graphic()
        {
            let at_start = e.column() - 1 == start;
            let what = if at_start {
                "looking for beginning of value"
            } else {
                "after top-level value"
            };
            if at_start || e.to_string().starts_with("trailing characters") {
                return format!("invalid character '{}' {what}", c as char);
            }
        }
        return e.to_string();
    }
    let kind = match body[start] {
        b'{' => "object",
        b'[' => "array",
        b'"' => "string",
        b't' | b'f' => "bool",
        b'n' => "null",
        _ => "number",
    };
    let want_array = go_type.starts_with("[]");
    if (body[start] == b'[') != want_array && kind != "null" {
        return format!("json: cannot unmarshal {kind} into Go value of type {go_type}");
    }
    e.to_string()
}

#[derive(Serialize)]
struct V1Status<'a> {
    state: &'a str,
    #[serde(rename = "silencedBy")]
    silenced_by: Option<Vec<String>>,
    #[serde(rename = "inhibitedBy")]
    inhibited_by: Option<Vec<String>>,
}

#[derive(Serialize)]
struct V1Alert<'a> {
    labels: &'a Labels,
    annotations: &'a Labels,
    #[serde(rename = "startsAt")]
    starts_at: String,
    #[serde(rename = "endsAt")]
    ends_at: String,
    #[serde(rename = "generatorURL")]
    generator_url: &'a str,
    status: V1Status<'a>,
    receivers: Vec<String>,
    fingerprint: String,
}

fn bool_param(name: &str, v: Option<&String>) -> Result<bool, String> {
    match v.map(String::as_str) {
        None | Some("") | Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(format!(
            "parameter {name:?} can either be 'true' or 'false', not {other:?}"
        )),
    }
}

/// `GET /api/v1/alerts`
pub async fn get_alerts(State(app): State<App>, RawQuery(q): RawQuery) -> Response {
    // r.FormValue: the first value of each parameter.
    let mut params: HashMap<String, String> = HashMap::new();
    for (k, v) in query_pairs(&q) {
        params.entry(k).or_insert(v);
    }
    let mut filter: Vec<Matcher> = Vec::new();
    if let Some(f) = params.get("filter").filter(|f| !f.is_empty()) {
        match parse_matchers(f) {
            Ok(m) => filter = m,
            Err(e) => return bad_data(e.to_string()),
        }
    }
    let mut flags = [true; 4];
    for (i, name) in ["active", "silenced", "inhibited", "unprocessed"]
        .iter()
        .enumerate()
    {
        match bool_param(name, params.get(*name)) {
            Ok(b) => flags[i] = b,
            Err(e) => return bad_data(e),
        }
    }
    let [
        show_active,
        show_silenced,
        show_inhibited,
        _show_unprocessed,
    ] = flags;
    let mut receiver = None;
    if let Some(r) = params.get("receiver").filter(|r| !r.is_empty()) {
        match crate::matcher::compile_regex(r) {
            Ok(re) => receiver = Some(re),
            Err(_) => return bad_data(format!("failed to parse receiver param: {r}")),
        }
    }
    let core = app.core();
    let now = core.clock.now();
    let route = core.config().route.clone();
    let mut alerts = core.alerts();
    alerts.sort_by_key(|a| fingerprint_hex(a.fingerprint()));
    let mut out = Vec::with_capacity(alerts.len());
    for a in &alerts {
        let receivers = receivers_of(&route, &a.labels);
        if let Some(re) = &receiver
            && !receivers.iter().any(|r| re.is_match(r))
        {
            continue;
        }
        if !matches_filter(&filter, |n| a.labels.get(n).map(str::to_string)) {
            continue;
        }
        if a.ends_at.is_some_and(|e| e < now) {
            continue;
        }
        let st = alert_status(&app, &a.labels, now);
        if (!show_active && st.state == "active")
            || (!show_silenced && !st.silenced_by.is_empty())
            || (!show_inhibited && !st.inhibited_by.is_empty())
        {
            continue;
        }
        out.push(v1_alert(
            a,
            st.state,
            st.silenced_by,
            st.inhibited_by,
            receivers,
        ));
    }
    success(Some(out))
}

fn v1_alert<'a>(
    a: &'a Alert,
    state: &'a str,
    silenced_by: Vec<String>,
    inhibited_by: Vec<String>,
    receivers: Vec<String>,
) -> V1Alert<'a> {
    V1Alert {
        labels: &a.labels,
        annotations: &a.annotations,
        starts_at: a.starts_at.to_rfc3339_nano(),
        ends_at: crate::time::format_opt_nano(a.ends_at),
        generator_url: &a.generator_url,
        status: V1Status {
            state,
            silenced_by: (!silenced_by.is_empty()).then_some(silenced_by),
            inhibited_by: (!inhibited_by.is_empty()).then_some(inhibited_by),
        },
        receivers,
        fingerprint: fingerprint_hex(a.fingerprint()),
    }
}

/// Go's zero time (and JSON null) mean "unset".
fn json_time(s: &Option<String>) -> Result<Option<Time>, String> {
    match s {
        None => Ok(None),
        Some(s) => {
            let t = crate::strfmt::parse_json_time(s)?;
            Ok((t.to_rfc3339_nano() != crate::time::GO_ZERO_TIME).then_some(t))
        }
    }
}

/// `POST /api/v1/alerts`
pub async fn post_alerts(State(app): State<App>, body: Bytes) -> Response {
    let raw: Vec<Option<PostableAlert>> = match serde_json::from_slice::<Option<_>>(&body) {
        Ok(v) => v.unwrap_or_default(),
        Err(e) => return bad_data(go_json_error(&body, "[]*types.Alert", &e)),
    };
    // model.LabelSet checks names while decoding: one bad name rejects the whole request.
    for a in raw.iter().flatten() {
        for set in [&a.labels, &a.annotations].into_iter().flatten() {
            if let Some(bad) = set.keys().find(|k| !is_valid_label_name(k)) {
                return bad_data(format!("{bad:?} is not a valid label name"));
            }
        }
    }
    let mut incoming = Vec::with_capacity(raw.len());
    for a in raw.into_iter().flatten() {
        match (json_time(&a.starts_at), json_time(&a.ends_at)) {
            (Ok(starts), Ok(ends)) => incoming.push(Incoming {
                labels: a.labels.unwrap_or_default(),
                annotations: a.annotations.unwrap_or_default(),
                starts,
                ends,
                generator_url: a.generator_url.unwrap_or_default(),
            }),
            (Err(e), _) | (_, Err(e)) => return bad_data(e),
        }
    }
    let errors = accept_alerts(&app, incoming, true);
    if !errors.is_empty() {
        return bad_data(errors.join("; "));
    }
    success::<()>(None)
}

#[derive(Serialize, Deserialize)]
struct V1Matcher {
    #[serde(default)]
    name: String,
    #[serde(default)]
    value: String,
    #[serde(default, rename = "isRegex")]
    is_regex: bool,
    #[serde(default = "yes", rename = "isEqual")]
    is_equal: bool,
}

fn yes() -> bool {
    true
}

#[derive(Serialize)]
struct V1SilenceStatus {
    state: &'static str,
}

#[derive(Serialize)]
struct V1Silence<'a> {
    id: &'a str,
    matchers: Vec<V1Matcher>,
    #[serde(rename = "startsAt")]
    starts_at: String,
    #[serde(rename = "endsAt")]
    ends_at: String,
    #[serde(rename = "updatedAt")]
    updated_at: String,
    #[serde(rename = "createdBy")]
    created_by: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    comment: &'a str,
    status: V1SilenceStatus,
}

fn v1_silence(s: &Silence, st: SilenceState) -> V1Silence<'_> {
    V1Silence {
        id: &s.id,
        matchers: s
            .matchers
            .iter()
            .map(|m| V1Matcher {
                name: m.name.clone(),
                value: m.value.clone(),
                is_regex: m.is_regex(),
                is_equal: m.is_equal(),
            })
            .collect(),
        starts_at: s.starts_at.utc().to_rfc3339_nano(),
        ends_at: s.ends_at.utc().to_rfc3339_nano(),
        updated_at: s.updated_at.utc().to_rfc3339_nano(),
        created_by: &s.created_by,
        comment: &s.comment,
        status: V1SilenceStatus { state: st.as_str() },
    }
}

/// `GET /api/v1/silences`
pub async fn get_silences(State(app): State<App>, RawQuery(q): RawQuery) -> Response {
    let mut filter = Vec::new();
    if let Some((_, f)) = query_pairs(&q).into_iter().find(|(k, _)| k == "filter")
        && !f.is_empty()
    {
        match parse_matchers(&f) {
            Ok(m) => filter = m,
            Err(e) => return bad_data(e.to_string()),
        }
    }
    let list = listed_silences(&app, &filter);
    let out: Vec<V1Silence<'_>> = list.iter().map(|(s, st)| v1_silence(s, *st)).collect();
    success(Some(out))
}

#[derive(Deserialize)]
struct V1PostSilence {
    #[serde(default)]
    id: String,
    #[serde(default)]
    matchers: Vec<V1Matcher>,
    #[serde(default, rename = "startsAt")]
    starts_at: Option<String>,
    #[serde(default, rename = "endsAt")]
    ends_at: Option<String>,
    #[serde(default, rename = "createdBy")]
    created_by: String,
    #[serde(default)]
    comment: String,
}

/// `POST /api/v1/silences`
pub async fn post_silences(State(app): State<App>, body: Bytes) -> Response {
    // serde would read a struct from an array; Go does not.
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return bad_data("json: cannot unmarshal array into Go value of type types.Silence");
    }
    let ps: V1PostSilence = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad_data(go_json_error(&body, "types.Silence", &e)),
    };
    let zero = crate::strfmt::parse_json_time(crate::time::GO_ZERO_TIME).ok();
    let starts_at = match &ps.starts_at {
        Some(s) => crate::strfmt::parse_json_time(s),
        None => zero.ok_or_else(String::new),
    };
    let ends_at = match &ps.ends_at {
        Some(s) => crate::strfmt::parse_json_time(s),
        None => zero.ok_or_else(String::new),
    };
    let (starts_at, ends_at) = match (starts_at, ends_at) {
        (Ok(s), Ok(e)) => (s, e),
        (Err(e), _) | (_, Err(e)) => return bad_data(e),
    };
    if starts_at == ends_at {
        return bad_data("start time must not be equal to end time");
    }
    let silences = &app.core().silences;
    if ends_at < silences.now() {
        return bad_data("end time can't be in the past");
    }
    let mut matchers = Vec::with_capacity(ps.matchers.len());
    for m in &ps.matchers {
        let kind = match (m.is_regex, m.is_equal) {
            (false, true) => MatchType::Equal,
            (false, false) => MatchType::NotEqual,
            (true, true) => MatchType::RegexMatch,
            (true, false) => MatchType::RegexNoMatch,
        };
        match Matcher::new(kind, m.name.clone(), m.value.clone()) {
            Ok(m) => matchers.push(m),
            Err(e) => return bad_data(e.to_string()),
        }
    }
    let sil = Silence {
        id: ps.id,
        matchers,
        starts_at,
        ends_at,
        updated_at: silences.now(),
        created_by: ps.created_by,
        comment: ps.comment,
    };
    match silences.set(sil) {
        Ok(id) => {
            #[derive(Serialize)]
            struct Id {
                #[serde(rename = "silenceId")]
                silence_id: String,
            }
            success(Some(Id { silence_id: id }))
        }
        Err(e) => bad_data(e.to_string()),
    }
}

/// `GET /api/v1/silence/{id}`
pub async fn get_silence(State(app): State<App>, Path(id): Path<String>) -> Response {
    let silences = &app.core().silences;
    match silences.get(&id) {
        Some(s) => {
            let st = s.state(silences.now());
            success(Some(v1_silence(&s, st)))
        }
        None => with_cors(
            (
                StatusCode::NOT_FOUND,
                [
                    (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                ],
                "Error getting silence: <nil>\n",
            )
                .into_response(),
        ),
    }
}

/// `DELETE /api/v1/silence/{id}`
pub async fn delete_silence(State(app): State<App>, Path(id): Path<String>) -> Response {
    match app.core().silences.expire(&id) {
        Ok(()) | Err(SilenceError::AlreadyExpired(_)) => success::<()>(None),
        Err(e) => bad_data(e.to_string()),
    }
}

/// `GET /api/v1/receivers`
pub async fn get_receivers(State(app): State<App>) -> Response {
    let cfg = app.core().config();
    let names: Vec<&str> = cfg.receivers.iter().map(|r| r.name.as_str()).collect();
    success(Some(names))
}

/// `GET /api/v1/status`
pub async fn get_status(State(app): State<App>) -> Response {
    #[derive(Serialize)]
    struct PeerOut {
        name: String,
        address: String,
    }
    #[derive(Serialize)]
    struct Cluster {
        name: String,
        status: &'static str,
        peers: Option<Vec<PeerOut>>,
    }
    #[derive(Serialize)]
    struct Status {
        #[serde(rename = "configYAML")]
        config_yaml: String,
        #[serde(rename = "configJSON")]
        config_json: Value,
        #[serde(rename = "versionInfo")]
        version_info: std::collections::BTreeMap<&'static str, &'static str>,
        uptime: String,
        #[serde(rename = "clusterStatus")]
        cluster_status: Option<Cluster>,
    }
    let cfg = app.core().config();
    let config_json = serde_json::to_value(&cfg.raw).unwrap_or(Value::Null);
    let version_info = [
        ("branch", "main"),
        ("buildDate", ""),
        ("buildUser", "vigil"),
        ("goVersion", "rust"),
        ("revision", "unknown"),
        ("version", env!("CARGO_PKG_VERSION")),
    ]
    .into_iter()
    .collect();
    let cluster_status = app.cluster().map(|c| {
        let peers: Vec<PeerOut> = c
            .members()
            .into_iter()
            .map(|m| PeerOut {
                name: m.name,
                address: m.addr.to_string(),
            })
            .collect();
        Cluster {
            name: c.name().to_string(),
            status: c.status(),
            peers: (!peers.is_empty()).then_some(peers),
        }
    });
    success(Some(Status {
        config_yaml: cfg.to_yaml(),
        config_json,
        version_info,
        uptime: app.start_time().to_rfc3339_nano(),
        cluster_status,
    }))
}

/// `OPTIONS /api/v1/*`: CORS preflight.
pub async fn options() -> Response {
    with_cors(StatusCode::OK.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str, ty: &str) -> String {
        let e = serde_json::from_slice::<Value>(body.as_bytes())
            .err()
            .or_else(|| {
                if ty.starts_with("[]") {
                    serde_json::from_slice::<Vec<Value>>(body.as_bytes()).err()
                } else {
                    serde_json::from_slice::<HashMap<String, Value>>(body.as_bytes()).err()
                }
            })
            .expect("an error");
        go_json_error(body.as_bytes(), ty, &e)
    }

    #[test]
    fn json_errors_read_like_go() {
        // As Alertmanager 0.25 answers on /api/v1.
        assert_eq!(
            err("x", "types.Silence"),
            "invalid character 'x' looking for beginning of value"
        );
        assert_eq!(
            err("[]", "types.Silence"),
            "json: cannot unmarshal array into Go value of type types.Silence"
        );
        assert_eq!(
            err("{}", "[]*types.Alert"),
            "json: cannot unmarshal object into Go value of type []*types.Alert"
        );
        assert_eq!(err("", "types.Silence"), "EOF");
        assert_eq!(err("[{", "[]*types.Alert"), "unexpected EOF");
    }
}
