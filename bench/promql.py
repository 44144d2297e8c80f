#!/usr/bin/env python3
"""PromQL benchmark (issue #3): the same synthetic data in vigil, Debian's Prometheus 2.42 and
Debian's VictoriaMetrics, a fixed set of range queries timed side by side, results checked
against Prometheus's.

Data. `--series` synthetic series (default 10,000; the README figures use 100,000) in blocks of
100 per instance: 40 counters `bench_http_requests_total{code,path}` (one in 50 resets once; a slope
unique to each series avoids ties in topk),
20 gauges `bench_queue_depth{queue}`, a classic histogram `bench_request_duration_seconds`
(3 handlers x 11 `le` buckets, `_sum`, `_count`) and one `bench_instance_info{version}` = 1;
instances `host-N:9100` spread over 10 jobs `job-0`..`job-9`. One sample per series every
`--interval` (15 s) for `--hours` (1) plus 35 minutes of lead-in, so that no window of any query
reaches before the data (at the data's edge Prometheus 3.x, which vigil follows, extrapolates
`rate` differently from 2.42), ending shortly before the run; samples sit 7 s after the 15 s grid
and queries 1 s after the last sample, so no step falls on a sample and 2.42's closed range
windows select what 3.x's left-open ones do. Values are deterministic functions of series
and step (integers and halves, so sums are exact).

Loading. The script encodes remote write 1.0 requests itself (hand-written protobuf; snappy
block format with literal-only elements, which every snappy decoder reads) and POSTs the very
same request bodies to all three systems, 100 series x 20 minutes per request, oldest time slice
first. Prometheus 2.42 accepts past samples through its remote write receiver as long as they
arrive in time order and are not older than the head's appendable window (its newest sample
minus one hour) — so it runs with no scrape config, and the slices go out in time order; the
same holds for vigil, and VictoriaMetrics takes anything. All three therefore hold exactly the
same samples (checked: the script compares the sums of `count_over_time` over the whole range
with the number of samples sent before timing). With `--hours 24` Prometheus cuts and compacts blocks while loading.
`--data DIR` keeps the systems' data in DIR: the first run loads it and records the load in
DIR/meta.json, later runs with the same `--series`/`--hours`/`--interval` start the three
systems on it and go straight to the data check and the queries (the query range is the one of
the load, so results stay comparable). `--ranges 1h` or `24h` times one table only.

Queries. A fixed set (see QUERIES) as range queries over the last 1 h with a 15 s step, and
also over 24 h with a 60 s step when `--hours` covers it; one untimed run, then `--runs` timed
runs per system and query, interleaved (each run goes to every system in turn, so load from
other processes falls on all alike); the table shows medians. Every vigil
and VictoriaMetrics result is compared with Prometheus's (same series, same timestamps, values
within 1e-9 relative); differences are listed under the table — a vigil difference makes the
script exit 1, VictoriaMetrics (MetricsQL is not exact PromQL) is only reported.
VictoriaMetrics runs with `-search.disableCache` (it otherwise answers repeated range queries
from its rollup result cache, which measures the cache, not the engine) and
`-search.latencyOffset=0s`. Peak RSS is VmHWM from /proc/PID/status, reset
(`/proc/PID/clear_refs` = 5) after loading, so it is the peak of the query phase; RSS after
loading is printed too. Prometheus and vigil run with `--query.max-samples=2000000000` and a
10 minute timeout so the 24 h queries are not cut off by limits.

Usage: bench/promql.py [--series 10000] [--hours 1] [--interval 15] [--runs 5]
                       [--systems vigil,prometheus,victoria-metrics] [--only NAME,...] [--keep]
                       [--data DIR] [--ranges 1h,24h] [--vigil-bin PATH]
Needs: target/release/vigil (cargo build --release -p vigil) and the Debian packages
prometheus and victoria-metrics (a missing peer is skipped and said so).
"""
import argparse
import concurrent.futures
import json
import math
import os
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ingest  # noqa: E402  (shared helpers: ports, /proc readers, System, wait_http)

ROOT = ingest.ROOT
PER_INSTANCE = 100
JOBS = 10
CODES = ["200", "201", "404", "500"]
PATHS = [f"/api/{c}" for c in "abcdefgh"] + ["/health", "/metrics"]
LES = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf"]
HANDLERS = ["h0", "h1", "h2"]
SLICE_STEPS = 80  # time steps per request (20 min at 15 s)
LEAD_S = 35 * 60  # data before the first query range (windows up to 30m, 10m subquery)

# (name, query). Each runs as a range query over 1 h (15 s step) and 24 h (60 s step).
QUERIES = [
    ("sum_rate", "sum by (job) (rate(bench_http_requests_total[5m]))"),
    ("histogram_quantile",
     "histogram_quantile(0.9, sum by (le) (rate(bench_request_duration_seconds_bucket[5m])))"),
    ("topk", "topk(10, rate(bench_http_requests_total[5m]))"),
    ("regex_rate", 'sum by (code) (rate(bench_http_requests_total{path=~"/api/.*", code=~"2.."}[5m]))'),
    ("regex_name", 'count by (job) ({__name__=~"bench_(http|queue).*", instance=~"host-1.*"})'),
    ("subquery", "max_over_time(sum by (job) (rate(bench_http_requests_total[1m]))[10m:1m])"),
    ("group_left",
     "sum by (job, instance) (rate(bench_http_requests_total[5m]))"
     " * on (job, instance) group_left (version) bench_instance_info"),
    ("10k_series", 'rate(bench_http_requests_total{code="200"}[5m])'),
    ("count_values", "count_values(\"depth\", bench_queue_depth)"),
    ("quantile_over_time", 'quantile_over_time(0.9, bench_queue_depth{queue=~"q1."}[10m])'),
    ("avg_by_over_time", "avg by (job) (avg_over_time(bench_queue_depth[5m]))"),
    ("latency_ratio",
     "sum by (job) (rate(bench_request_duration_seconds_sum[5m]))"
     " / sum by (job) (rate(bench_request_duration_seconds_count[5m]))"),
    ("increase_30m", "sum by (code) (increase(bench_http_requests_total[30m]))"),
]

# Sanity check of the loaded data: must be equal in all three systems.
CHECK_QUERY = " + ".join(
    f"sum(count_over_time({m}[{{RANGE}}s]))"
    for m in ["bench_http_requests_total", "bench_queue_depth", "bench_instance_info",
              "bench_request_duration_seconds_bucket", "bench_request_duration_seconds_sum",
              "bench_request_duration_seconds_count"])


# ---------------------------------------------------------------- data and remote write encoding

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_bytes(field, data):
    return varint(field << 3 | 2) + varint(len(data)) + data


def snappy_literal(data):
    """Snappy block format with one literal element (valid, uncompressed)."""
    n = len(data)
    return varint(n) + bytes([63 << 2]) + struct.pack("<I", n - 1) + data


def instance_series(i):
    """(kind, labels, params) of the 100 series of instance i; labels sorted by name."""
    job = f"job-{i % JOBS}"
    inst = f"host-{i}:9100"
    out = []
    for c in CODES:
        for p in PATHS:
            out.append(("counter", [("__name__", "bench_http_requests_total"), ("code", c),
                                    ("instance", inst), ("job", job), ("path", p)]))
    for q in range(20):
        out.append(("gauge", [("__name__", "bench_queue_depth"), ("instance", inst),
                              ("job", job), ("queue", f"q{q}")]))
    for h in HANDLERS:
        for j, le in enumerate(LES):
            out.append((("bucket", j), [("__name__", "bench_request_duration_seconds_bucket"),
                                        ("handler", h), ("instance", inst), ("job", job),
                                        ("le", le)]))
        out.append(("hsum", [("__name__", "bench_request_duration_seconds_sum"), ("handler", h),
                             ("instance", inst), ("job", job)]))
        out.append(("hcount", [("__name__", "bench_request_duration_seconds_count"),
                               ("handler", h), ("instance", inst), ("job", job)]))
    out.append(("info", [("__name__", "bench_instance_info"), ("instance", inst), ("job", job),
                         ("version", f"v{i % 3}")]))
    assert len(out) == PER_INSTANCE
    return out


def series_values(kind, s, steps):
    """Values of series number s (global) at the given step numbers."""
    a = 6 + s % 5
    b = 1 + s % 6
    if kind == "counter":
        reset = 120 if s % 50 == 0 else None
        out = []
        for k in steps:
            if reset is not None and k >= reset:
                out.append(float((k - reset) * a + (k * b) % 7))
            else:
                out.append(k * a + (k * b) % 7 + s % 100 + k * s / 131072)
        return out
    if kind == "gauge":
        return [float((s * 13 + k * 7) % 100) + (k % 5) * 0.5 for k in steps]
    if kind == "info":
        return [1.0] * len(steps)
    # Histogram: cumulative buckets of a monotone count.
    count = [k * a + (k * b) % 7 for k in steps]
    if kind == "hcount":
        return [float(c) for c in count]
    if kind == "hsum":
        return [c * 0.25 for c in count]
    j = kind[1]
    num = (j + 1) * (j + 2)
    den = 11 * 12
    return [float(c * num // den) for c in count]


def build_requests(n_series, t_end_ms, interval_s, steps, outdir):
    """Writes the request bodies to outdir/slice-T/NNNN.bin; returns [[paths of slice 0], ...]."""
    n_inst = max(1, n_series // PER_INSTANCE)
    first = -(steps - 1)  # step numbers first..0, 0 at t_end
    ts_of = lambda k: t_end_ms + k * interval_s * 1000  # noqa: E731
    slices = []
    for s0 in range(first, 1, SLICE_STEPS):
        ks = list(range(s0, min(s0 + SLICE_STEPS, 1)))
        # The step number passed to value functions is k - first (>= 0, counters grow from 0).
        vk = [k - first for k in ks]
        ts_tail = [b"\x10" + varint(ts_of(k)) for k in ks]
        d = os.path.join(outdir, f"slice-{len(slices):04d}")
        os.makedirs(d)
        paths = []
        for inst in range(n_inst):
            body = bytearray()
            for n, (kind, labels) in enumerate(instance_series(inst)):
                s = inst * PER_INSTANCE + n
                lab = b"".join(pb_bytes(1, pb_bytes(1, k.encode()) + pb_bytes(2, v.encode()))
                               for k, v in labels)
                vals = struct.pack(f"<{len(vk)}d", *series_values(kind, s, vk))
                samples = b"".join(b"\x12" + bytes([9 + len(t)]) + b"\x09" + vals[8 * i:8 * i + 8] + t
                                   for i, t in enumerate(ts_tail))
                body += pb_bytes(1, lab + samples)
            p = os.path.join(d, f"{inst:05d}.bin")
            with open(p, "wb") as f:
                f.write(snappy_literal(bytes(body)))
            paths.append(p)
        slices.append(paths)
    return slices, n_inst * PER_INSTANCE * steps


def post_body(url, path):
    with open(path, "rb") as f:
        data = f.read()
    req = urllib.request.Request(url, data=data, method="POST", headers={
        "Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
        "X-Prometheus-Remote-Write-Version": "0.1.0"})
    with urllib.request.urlopen(req, timeout=300) as r:
        r.read()
        if r.status not in (200, 204):
            raise RuntimeError(f"{url}: {r.status}")


def load(url, slices, threads=3):
    t0 = time.time()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for paths in slices:  # time order: one slice after the other
            for fut in [pool.submit(post_body, url, p) for p in paths]:
                fut.result()
    return time.time() - t0


# ---------------------------------------------------------------- queries and comparison

def query_range(base, q, start, end, step, timeout=900):
    body = urllib.parse.urlencode({"query": q, "start": f"{start:.3f}", "end": f"{end:.3f}",
                                   "step": str(step)}).encode()
    req = urllib.request.Request(f"{base}/api/v1/query_range", data=body, method="POST",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
    except urllib.error.HTTPError as e:
        raw = e.read()
    dt = time.perf_counter() - t0
    return dt, raw


def parse_result(raw):
    d = json.loads(raw)
    if d.get("status") != "success":
        return None, f"{d.get('errorType')}: {d.get('error')}"
    out = {}
    for s in d["data"]["result"]:
        key = tuple(sorted(s["metric"].items()))
        out[key] = [(float(t), v) for t, v in s["values"]]
    return out, None


def same_value(a, b):
    fa, fb = float(a), float(b)
    if math.isnan(fa) or math.isnan(fb):
        return math.isnan(fa) and math.isnan(fb)
    if fa == fb:
        return True
    return abs(fa - fb) <= 1e-9 * max(abs(fa), abs(fb))


def compare(ref, got):
    """None when equal, else a short description of the first differences."""
    if ref is None or got is None:
        return "no result"
    missing = [k for k in ref if k not in got]
    extra = [k for k in got if k not in ref]
    if missing or extra:
        return (f"series: {len(ref)} expected, {len(got)} got, {len(missing)} missing"
                f" (e.g. {dict(missing[0]) if missing else '-'}), {len(extra)} extra"
                f" (e.g. {dict(extra[0]) if extra else '-'})")
    diffs = 0
    first = None
    for k, pts in ref.items():
        g = got[k]
        gd = dict(g)
        if len(g) != len(pts):
            diffs += 1
            if first is None:
                first = f"{dict(k)}: {len(pts)} points expected, {len(g)} got"
            continue
        for t, v in pts:
            if t not in gd or not same_value(v, gd[t]):
                diffs += 1
                if first is None:
                    first = f"{dict(k)} @{t}: {v} expected, {gd.get(t)} got"
                break
    if diffs:
        return f"{diffs} of {len(ref)} series differ, e.g. {first}"
    return None


def peak_rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def reset_peak(pid):
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
    except OSError as e:
        print(f"cannot reset VmHWM of {pid}: {e}", file=sys.stderr)


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--hours", type=float, default=1)
    ap.add_argument("--interval", type=int, default=15)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--systems", default="vigil,prometheus,victoria-metrics")
    ap.add_argument("--only", default="", help="comma-separated query names")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (data of all systems)")
    ap.add_argument("--data", default="",
                    help="reusable work dir: loaded once (DIR/meta.json records the load), later"
                         " runs with the same --series/--hours/--interval start the systems on the"
                         " stored data and skip encoding and loading; never deleted")
    ap.add_argument("--ranges", default="", help="comma-separated subset of 1h,24h")
    ap.add_argument("--serve", type=int, default=0,
                    help="keep the systems running this many seconds after the run (debugging)")
    ap.add_argument("--vigil-bin", default=os.path.join(ROOT, "target", "release", "vigil"),
                    help="the vigil binary to measure (default target/release/vigil)")
    a = ap.parse_args()
    vigil = os.path.abspath(a.vigil_bin)
    if not os.path.exists(vigil):
        sys.exit("build first: cargo build --release -p vigil (or pass --vigil-bin)")
    wanted = a.systems.split(",")
    queries = [q for q in QUERIES if not a.only or q[0] in a.only.split(",")]
    if a.data:
        work = os.path.abspath(a.data)
        os.makedirs(work, exist_ok=True)
    else:
        work = tempfile.mkdtemp(prefix="vigil-bench-promql-")
    meta_path = os.path.join(work, "meta.json")
    shape = {"series": a.series, "hours": a.hours, "interval": a.interval}
    meta = None
    if a.data and os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
        if meta["shape"] != shape:
            sys.exit(f"{work} holds {meta['shape']}, not {shape}: use another --data dir")
    systems = {}
    try:
        steps = int(a.hours * 3600 + LEAD_S) // a.interval + 1
        if meta is None:
            now = time.time()
            # Samples 7 s after the step grid and queries 1 s after the last sample: no query or
            # subquery step falls on a sample, so Prometheus 2.42's closed range windows and 3.x's
            # left-open ones (which vigil follows) select the same samples.
            t_end_ms = int(now // a.interval * a.interval - a.interval) * 1000 + 7000
            t0 = time.time()
            slices, n_samples = build_requests(a.series, t_end_ms, a.interval, steps,
                                               os.path.join(work, "requests"))
            n_series = len(slices[0]) * PER_INSTANCE
            print(f"data: {n_series} series x {steps} samples = {n_samples:,} samples, "
                  f"{len(slices)} slices x {len(slices[0])} requests, encoded in "
                  f"{time.time() - t0:.1f}s", file=sys.stderr)
        else:
            t_end_ms, n_samples, n_series = meta["t_end_ms"], meta["samples"], meta["n_series"]
            slices = None
            print(f"data: reusing {work} ({n_series} series, {n_samples:,} samples, loaded into"
                  f" {', '.join(meta['systems'])})", file=sys.stderr)

        empty_cfg = os.path.join(work, "empty.yml")
        with open(empty_cfg, "w") as f:
            f.write("global:\n  scrape_interval: 15s\n")
        if "vigil" in wanted:
            p = ingest.free_port()
            systems["vigil"] = ingest.System(
                "vigil", [vigil, "server", f"--config.file={empty_cfg}",
                          f"--storage.tsdb.path={work}/vigil", f"--web.listen-address=127.0.0.1:{p}",
                          "--web.enable-remote-write-receiver", "--query.max-samples=2000000000",
                          "--query.timeout=10m"], p, "/-/ready", "", work)
        if "prometheus" in wanted and shutil.which("prometheus"):
            p = ingest.free_port()
            systems["prometheus"] = ingest.System(
                "prometheus", ["prometheus", f"--config.file={empty_cfg}",
                               f"--storage.tsdb.path={work}/prometheus",
                               f"--web.listen-address=127.0.0.1:{p}",
                               "--web.enable-remote-write-receiver",
                               "--query.max-samples=2000000000", "--query.timeout=10m"],
                p, "/-/ready", "", work)
        elif "prometheus" in wanted:
            print("prometheus not installed: skipped", file=sys.stderr)
        if "victoria-metrics" in wanted and shutil.which("victoria-metrics"):
            p = ingest.free_port()
            systems["victoria-metrics"] = ingest.System(
                "victoria-metrics", ["victoria-metrics", f"-httpListenAddr=127.0.0.1:{p}",
                                     f"-storageDataPath={work}/vm", "-retentionPeriod=100y",
                                     "-search.disableCache", "-search.latencyOffset=0s",
                                     "-search.maxQueryDuration=10m",
                                     "-search.maxUniqueTimeseries=10000000",
                                     "-search.maxSamplesPerQuery=10000000000"],
                p, "/health", "", work)
        elif "victoria-metrics" in wanted:
            print("victoria-metrics not installed: skipped", file=sys.stderr)
        for s in systems.values():
            ingest.wait_http(s.url(s.ready_path))

        if meta is None:
            for name, s in systems.items():
                dt = load(s.url("/api/v1/write"), slices)
                print(f"loaded {name} in {dt:.1f}s ({n_samples / dt / 1e6:.2f}M samples/s)",
                      file=sys.stderr)
            shutil.rmtree(os.path.join(work, "requests"), ignore_errors=True)
            if a.data:
                with open(meta_path, "w") as f:
                    json.dump({"shape": shape, "t_end_ms": t_end_ms, "samples": n_samples,
                               "n_series": n_series, "systems": sorted(systems)}, f)
        else:
            missing = [n for n in systems if n not in meta["systems"]]
            if missing:
                sys.exit(f"{work} was loaded without {', '.join(missing)}: use another --data dir")

        end = t_end_ms / 1000 + 1
        data_start = end - (steps - 1) * a.interval
        # Data check: every system must see every sample (VM ingests asynchronously: poll).
        chk = CHECK_QUERY.replace("{RANGE}", str(int(end - data_start) + a.interval))
        expect = None
        for name, s in systems.items():
            deadline = time.time() + 120
            while True:
                _, raw = query_range(s.url(""), chk, end, end, 60)
                got, err = parse_result(raw)
                vals = {"samples": float(v[0][1]) for v in (got or {}).values()}
                if sum(vals.values()) == n_samples or time.time() > deadline:
                    break
                time.sleep(1)
            print(f"{name}: {sum(vals.values()):,.0f} samples visible ({err or 'ok'})",
                  file=sys.stderr)
            if expect is None:
                expect = vals
            elif vals != expect:
                print(f"WARNING: {name} holds different data: {vals} vs {expect}", file=sys.stderr)

        after_load = {}
        for name, s in systems.items():
            after_load[name] = ingest.rss_bytes(s.proc.pid)
            reset_peak(s.proc.pid)

        ranges = [("1h", 3600, 15)]
        if a.hours >= 24:
            ranges.append(("24h", 24 * 3600, 60))
        if a.ranges:
            ranges = [r for r in ranges if r[0] in a.ranges.split(",")]
        order = [n for n in ["vigil", "prometheus", "victoria-metrics"] if n in systems]
        results = {}
        problems = []
        for rname, rlen, step in ranges:
            for qname, q in queries:
                refs = {}
                ok = []
                for sname in order:
                    url = systems[sname].url("")
                    _, raw = query_range(url, q, end - rlen, end, step)  # untimed first run
                    refs[sname], err = parse_result(raw)
                    if err:
                        problems.append(f"{rname} {qname}: {sname}: error {err}")
                        results[(rname, qname, sname)] = None
                        continue
                    ok.append(sname)
                # Timed runs interleaved (run 1 of each system, then run 2, ...), so a
                # change in the machine's load (other processes, a build) touches every
                # system alike instead of whichever ran its runs at that moment.
                times = {sname: [] for sname in ok}
                for _ in range(a.runs):
                    for sname in ok:
                        dt, _ = query_range(systems[sname].url(""), q, end - rlen, end, step)
                        times[sname].append(dt)
                for sname in ok:
                    med = statistics.median(times[sname])
                    results[(rname, qname, sname)] = (med, len(refs[sname]))
                    print(f"{rname} {qname:<20} {sname:<17} {med * 1000:9.1f} ms"
                          f"  {len(refs[sname])} series", file=sys.stderr)
                if "prometheus" in refs and refs["prometheus"] is not None:
                    for sname in ("vigil", "victoria-metrics"):
                        if sname in refs and refs[sname] is not None:
                            diff = compare(refs["prometheus"], refs[sname])
                            if diff:
                                problems.append(f"{rname} {qname}: {sname} differs from Prometheus: {diff}")

        peaks = {n: peak_rss(s.proc.pid) for n, s in systems.items()}
        names = {"vigil": "vigil", "prometheus": "Prometheus 2.42", "victoria-metrics": "VictoriaMetrics"}
        print(f"\n{n_series:,} series, {n_samples:,} samples ({a.interval}s interval, "
              f"{a.hours:g} h + {LEAD_S // 60} min), median of {a.runs} warm runs, ms; "
              f"{os.cpu_count()} cores\n")
        hdr = "| range | query | series | " + " | ".join(names[n] for n in order)
        if "victoria-metrics" in order and "vigil" in order:
            hdr += " | vigil / VM"
        print(hdr + " |")
        print("| --- | --- | ---: | " + " | ".join("---:" for _ in order)
              + (" | ---:" if "victoria-metrics" in order and "vigil" in order else "") + " |")
        for rname, _, step in ranges:
            for qname, _ in queries:
                cells = []
                nser = ""
                for sname in order:
                    r = results.get((rname, qname, sname))
                    cells.append("error" if r is None else f"{r[0] * 1000:,.1f}")
                    if r is not None and sname == "prometheus":
                        nser = f"{r[1]:,}"
                    elif r is not None and not nser:
                        nser = f"{r[1]:,}"
                row = f"| {rname} ({step}s) | `{qname}` | {nser} | " + " | ".join(cells)
                if "victoria-metrics" in order and "vigil" in order:
                    v, m = results.get((rname, qname, "vigil")), results.get((rname, qname, "victoria-metrics"))
                    row += " | " + (f"{v[0] / m[0]:.2f}" if v and m else "-")
                print(row + " |")
        print("| | peak RSS during queries (MiB) | | "
              + " | ".join(f"{peaks[n] / 2**20:,.0f}" for n in order)
              + (" | " if "victoria-metrics" in order and "vigil" in order else "") + " |")
        print("| | RSS after loading (MiB) | | "
              + " | ".join(f"{after_load[n] / 2**20:,.0f}" for n in order)
              + (" | " if "victoria-metrics" in order and "vigil" in order else "") + " |")
        print()
        for q in queries:
            print(f"- `{q[0]}`: `{q[1]}`")
        print()
        for p in problems:
            print("- " + p)
        if not problems:
            print("all results equal to Prometheus's")
        if a.serve:
            for n, s in systems.items():
                print(f"{n}: {s.url('')} pid {s.proc.pid}", file=sys.stderr)
            print(f"serving for {a.serve}s; query range end {end}", file=sys.stderr)
            sys.stdout.flush()
            time.sleep(a.serve)
        if a.keep:
            print(f"work dir kept: {work}", file=sys.stderr)
        if any(": vigil " in p or ": vigil:" in p for p in problems):
            sys.exit(1)
    finally:
        for s in systems.values():
            s.stop()
        if not a.keep and not a.data:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
