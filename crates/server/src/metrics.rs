//! The server's own metrics, rendered in text format 0.0.4 for `/metrics`. Values are read from
//! the components' counters at scrape time, so there is no registry to keep in sync and no
//! process-wide state.

use std::fmt::Write;

use crate::app::App;

/// A text-format writer for one exposition.
#[derive(Default)]
pub struct Out {
    buf: String,
}

impl Out {
    /// Starts a family with its HELP and TYPE lines.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Self {
        let _ = writeln!(
            self.buf,
            "# HELP {name} {}",
            help.replace('\\', "\\\\").replace('\n', "\\n")
        );
        let _ = writeln!(self.buf, "# TYPE {name} {kind}");
        self
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: f64) -> &mut Self {
        web::metrics::write_series(&mut self.buf, name, labels);
        let _ = writeln!(self.buf, " {}", expfmt::format_float(v));
        self
    }

    /// A family with a single unlabelled sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, v: f64) -> &mut Self {
        self.family(name, kind, help).sample(name, &[], v)
    }

    /// Appends already-rendered exposition text.
    pub fn raw(&mut self) -> &mut String {
        &mut self.buf
    }

    pub fn finish(self) -> String {
        self.buf
    }
}

/// Renders every metric of the server.
pub fn render(app: &App) -> String {
    let mut o = Out::default();
    o.family("prometheus_build_info", "gauge", "A metric with a constant '1' value labeled by version, revision, branch, and goversion from which prometheus was built.")
        .sample(
            "prometheus_build_info",
            &[("branch", "main"), ("goversion", "rust"), ("revision", "unknown"), ("version", env!("CARGO_PKG_VERSION"))],
            1.0,
        );
    o.single(
        "prometheus_config_last_reload_successful",
        "gauge",
        "Whether the last configuration reload attempt was successful.",
        if app.reload_successful() { 1.0 } else { 0.0 },
    );
    o.single(
        "prometheus_config_last_reload_success_timestamp_seconds",
        "gauge",
        "Timestamp of the last successful configuration reload.",
        app.last_reload_success_seconds() as f64,
    );
    o.single("prometheus_ready", "gauge", "Whether Prometheus startup was fully completed and the server is ready for normal operation.", if app.is_ready() { 1.0 } else { 0.0 });
    process_metrics(&mut o, app);
    crate::metrics_components::render_components(&mut o, app);
    app.remote_writers().render_metrics(o.raw());
    let mut text = o.finish();
    text.push_str(&app.alerting().render_metrics());
    text
}

/// `process_*` metrics from /proc, like the Go client's process collector.
fn process_metrics(o: &mut Out, app: &App) {
    // compat: Linux reports CPU times in USER_HZ ticks, which is 100 on every supported platform.
    const TICKS: f64 = 100.0;
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the parenthesised command name; the name itself may contain spaces.
        if let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) {
            let f: Vec<&str> = rest.split_whitespace().collect();
            let num = |i: usize| f.get(i).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
            // rest[0] is field 3 (state): utime=14, stime=15, vsize=23, rss=24 (1-based fields).
            let cpu = (num(11) + num(12)) / TICKS;
            o.single(
                "process_cpu_seconds_total",
                "counter",
                "Total user and system CPU time spent in seconds.",
                cpu,
            );
            o.single(
                "process_virtual_memory_bytes",
                "gauge",
                "Virtual memory size in bytes.",
                num(20),
            );
        }
    }
    if let Some(kb) = proc_field("/proc/self/status", "VmRSS:", 1) {
        o.single(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            kb * 1024.0,
        );
    }
    if let Ok(rd) = std::fs::read_dir("/proc/self/fd") {
        o.single(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            rd.count() as f64,
        );
    }
    if let Some(v) = proc_field("/proc/self/limits", "Max open files", 3) {
        o.single(
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            v,
        );
    }
    o.single(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        app.start_time().as_millisecond() as f64 / 1000.0,
    );
}

/// The `word`-th whitespace-separated number on the line of `file` starting with `prefix`.
fn proc_field(file: &str, prefix: &str, word: usize) -> Option<f64> {
    std::fs::read_to_string(file)
        .ok()?
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.split_whitespace().nth(word))
        .and_then(|v| v.parse::<f64>().ok())
}
