#!/usr/bin/env python3
"""Query benchmark: latency of a fixed PromQL query set through `vigil query` over two vigil
replicas, against one vigil replica directly, and against Debian's Prometheus 2.42 directly —
all scraping the same synthetic targets, in one run, on this machine.

For each system and query it reports the median and 90th percentile latency of `--runs`
repetitions (interleaved: one request to each system in turn, so all see the same load), and
for `vigil query` its peak resident memory (VmHWM). Latency depends on the machine's load, so
it also reports the CPU time each system spends per run of the query set,
counting every process the answer needs (for `vigil query`: itself and both replicas), less
what those processes spend when idle (scraping), measured before the queries.

`vigil query` answers a query from one replica alone when that replica's data is complete for
everything the query reads (push-down); a second `vigil query` with `--query.push-down=false`
runs over the same replicas and is measured too ("merge path"), so both ways are compared side
by side under the same load. With `--compare BIN` a third `vigil query` built from another
binary (e.g. an older commit's) is measured as well.

Usage: bench/query.py [--targets 10] [--series 1000] [--interval 1s] [--warmup 120] [--runs 15]
                      [--compare path/to/other/vigil] [--vigil-bin PATH]
Needs: target/release/vigil (cargo build --release -p vigil), or --vigil-bin (copy the binary
elsewhere so other builds do not replace it during the run); Prometheus 2.42 (Debian package
`prometheus`) is skipped when missing.
"""
import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (name, kind, query, range seconds): instant queries at "now", range queries over the last
# `range` seconds at 15 s resolution.
QUERIES = [
    ("selector", "instant", "demo_queue_depth", 0),
    ("sum_rate", "instant", "sum by (code) (rate(demo_http_requests_total[1m]))", 0),
    ("histogram_quantile", "instant",
     "histogram_quantile(0.9, sum by (le) (rate(demo_request_duration_seconds_bucket[1m])))", 0),
    ("count", "instant", "count(demo_http_requests_total)", 0),
    ("range_sum_rate", "range", "sum(rate(demo_http_requests_total[1m]))", 0),
    ("range_topk", "range", "topk(5, rate(demo_http_requests_total[1m]))", 0),
    ("range_selector", "range", "demo_queue_depth", 0),
]


def free_port_range(n):
    """A base port with n free consecutive ports after it."""
    for base in range(20000, 60000, n + 7):
        ok = True
        for p in range(base, base + n):
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                ok = False
            finally:
                s.close()
            if not ok:
                break
        if ok:
            return base
    raise RuntimeError("no free port range")


def wait_http(url, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready")


def peak_rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid):
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def config(targets, interval, replica):
    lines = [
        "global:",
        f"  scrape_interval: {interval}",
        f"  scrape_timeout: {interval}",
        "  external_labels:",
        f"    replica: {replica}",
        "scrape_configs:",
        "  - job_name: demo",
        "    static_configs:",
        "      - targets: [" + ", ".join(f"'{t}'" for t in targets) + "]",
    ]
    return "\n".join(lines) + "\n"


def timed_get(url):
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as r:
        body = r.read()
        if r.status != 200:
            raise RuntimeError(f"{url}: {r.status}")
    dt = time.perf_counter() - t0
    if b'"status":"success"' not in body:
        raise RuntimeError(f"{url}: {body[:300]!r}")
    return dt


def query_url(base, kind, q, window):
    now = time.time()
    if kind == "instant":
        return f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": q, "time": f"{now:.3f}"})
    return f"{base}/api/v1/query_range?" + urllib.parse.urlencode(
        {"query": q, "start": f"{now - window:.3f}", "end": f"{now:.3f}", "step": "15"})


def main():
    # A SIGTERM stops the children and removes the work dir too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", type=int, default=10)
    ap.add_argument("--series", type=int, default=1000)
    ap.add_argument("--interval", default="1s")
    ap.add_argument("--warmup", type=int, default=120)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--compare", help="another vigil binary whose `vigil query` is measured too")
    ap.add_argument("--vigil-bin", default=os.path.join(ROOT, "target", "release", "vigil"),
                    help="the vigil binary measured (default: target/release/vigil)")
    a = ap.parse_args()
    vigil = os.path.abspath(a.vigil_bin)
    if not os.path.exists(vigil):
        sys.exit("build first: cargo build --release -p vigil (or pass --vigil-bin)")
    work = tempfile.mkdtemp(prefix="vigil-bench-query-")
    procs = []

    def spawn(name, cmd):
        log = open(os.path.join(work, f"{name}.log"), "w")
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        procs.append(p)
        return p

    try:
        base = free_port_range(a.targets + 10)
        ports = iter(range(base + a.targets, base + a.targets + 10))
        spawn("demo", [vigil, "demo", f"--targets={a.targets}", f"--series={a.series}",
                       f"--listen=127.0.0.1:{base}"])
        targets = [f"127.0.0.1:{base + i}" for i in range(a.targets)]
        systems = {}
        pids = {}
        for r in ["a", "b"]:
            d = os.path.join(work, r)
            os.makedirs(d)
            with open(os.path.join(d, "prometheus.yml"), "w") as f:
                f.write(config(targets, a.interval, r))
            port = next(ports)
            pids[f"vigil {r}"] = spawn(f"vigil-{r}", [vigil, "server", f"--config.file={d}/prometheus.yml",
                                 f"--storage.tsdb.path={d}/data",
                                 f"--web.listen-address=127.0.0.1:{port}"]).pid
            systems[f"vigil {r}"] = f"http://127.0.0.1:{port}"
        qport = next(ports)
        q = spawn("query", [vigil, "query", f"--web.listen-address=127.0.0.1:{qport}",
                            f"--endpoint={systems['vigil a']}", f"--endpoint={systems['vigil b']}",
                            "--query.replica-label=replica"])
        systems["vigil query (2 replicas)"] = f"http://127.0.0.1:{qport}"
        mport = next(ports)
        mq = spawn("query-merge", [vigil, "query", f"--web.listen-address=127.0.0.1:{mport}",
                                   f"--endpoint={systems['vigil a']}",
                                   f"--endpoint={systems['vigil b']}",
                                   "--query.replica-label=replica", "--query.push-down=false"])
        systems["vigil query (merge path)"] = f"http://127.0.0.1:{mport}"
        involved = {"vigil query (2 replicas)": [q.pid, pids["vigil a"], pids["vigil b"]],
                    "vigil query (merge path)": [mq.pid, pids["vigil a"], pids["vigil b"]],
                    "vigil a": [pids["vigil a"]]}
        cq = None
        if a.compare:
            cport = next(ports)
            cq = spawn("query-compare", [a.compare, "query", f"--web.listen-address=127.0.0.1:{cport}",
                                         f"--endpoint={systems['vigil a']}",
                                         f"--endpoint={systems['vigil b']}",
                                         "--query.replica-label=replica"])
            systems["vigil query (compare)"] = f"http://127.0.0.1:{cport}"
            involved["vigil query (compare)"] = [cq.pid, pids["vigil a"], pids["vigil b"]]
        if shutil.which("prometheus"):
            d = os.path.join(work, "prom")
            os.makedirs(d)
            with open(os.path.join(d, "prometheus.yml"), "w") as f:
                f.write(config(targets, a.interval, "p"))
            port = next(ports)
            involved["prometheus 2.42"] = [spawn("prometheus", ["prometheus", f"--config.file={d}/prometheus.yml",
                                 f"--storage.tsdb.path={d}/data",
                                 f"--web.listen-address=127.0.0.1:{port}"]).pid]
            systems["prometheus 2.42"] = f"http://127.0.0.1:{port}"
        else:
            print("prometheus not installed: skipped", file=sys.stderr)
        for name, url in systems.items():
            try:
                wait_http(url + "/-/ready")
            except RuntimeError:
                for f in os.listdir(work):
                    if f.endswith(".log"):
                        print(f"--- {f}\n" + open(os.path.join(work, f)).read()[-2000:], file=sys.stderr)
                raise
        print(f"warming up {a.warmup}s ({a.targets} targets x ~{a.series} series every {a.interval})",
              file=sys.stderr)
        time.sleep(a.warmup)
        # Idle CPU rate of every process (scraping, compaction), subtracted below.
        all_pids = sorted({p for ps in involved.values() for p in ps})
        c0, t0 = {p: cpu_seconds(p) for p in all_pids}, time.perf_counter()
        time.sleep(10)
        idle = {p: (cpu_seconds(p) - c0[p]) / (time.perf_counter() - t0) for p in all_pids}
        cpu = {}
        order = ["vigil query (2 replicas)", "vigil query (merge path)", "vigil query (compare)",
                 "vigil a", "prometheus 2.42"]
        order = [s for s in order if s in systems]
        results = {}
        for name, kind, qtext, _ in QUERIES:
            window = max(60, a.warmup - 30)
            for s in order:
                timed_get(query_url(systems[s], kind, qtext, window))  # warm caches
            # Runs interleaved (one of each system in turn), so every system sees the same
            # load from the machine's other work.
            times = {s: [] for s in order}
            cpu_sum = {s: 0.0 for s in order}
            for _ in range(a.runs):
                for s in order:
                    c0, t0 = {p: cpu_seconds(p) for p in involved[s]}, time.perf_counter()
                    times[s].append(timed_get(query_url(systems[s], kind, qtext, window)))
                    el = time.perf_counter() - t0
                    cpu_sum[s] += sum(max(0.0, cpu_seconds(p) - c0[p] - idle[p] * el)
                                      for p in involved[s])
            for s in order:
                cpu[(name, s)] = cpu_sum[s] / a.runs
                ts = sorted(times[s])
                results[(name, s)] = (statistics.median(ts), ts[int(len(ts) * 0.9) - 1])
        print(f"\n{'query':<20} " + " ".join(f"{s:>28}" for s in order) + "   query/direct")
        for name, _, _, _ in QUERIES:
            row = [f"{results[(name, s)][0] * 1000:9.1f} ms (p90 {results[(name, s)][1] * 1000:7.1f})"
                   for s in order]
            ratio = results[(name, order[0])][0] / results[(name, "vigil a")][0]
            print(f"{name:<20} " + " ".join(f"{c:>28}" for c in row) + f"   {ratio:5.2f}x")
        tot = {s: sum(results[(n, s)][0] for n, _, _, _ in QUERIES) for s in order}
        print(f"{'sum of medians':<20} " + " ".join(f"{tot[s] * 1000:25.1f} ms" for s in order)
              + f"   {tot[order[0]] / tot['vigil a']:5.2f}x")
        if "prometheus 2.42" in tot:
            print(f"vigil query / prometheus 2.42 (sum of medians): "
                  f"{tot[order[0]] / tot['prometheus 2.42']:.2f}x")
        ctot = {s: sum(cpu[(n, s)] for n, _, _, _ in QUERIES) for s in order}
        print(f"{'CPU per query set':<20} " + " ".join(f"{ctot[s] * 1000:25.0f} ms" for s in order)
              + f"   {ctot[order[0]] / max(ctot['vigil a'], 1e-9):5.2f}x")
        print(f"vigil query peak RSS: {peak_rss(q.pid) / 2**20:.1f} MiB")
        m = "vigil query (merge path)"
        print(f"merge path: {tot[m] / tot['vigil a']:.2f}x one replica"
              + (f", {tot[m] / tot['prometheus 2.42']:.2f}x prometheus 2.42"
                 if "prometheus 2.42" in tot else "")
              + f", CPU {ctot[m] * 1000:.0f} ms, peak RSS {peak_rss(mq.pid) / 2**20:.1f} MiB")
        try:
            with urllib.request.urlopen(systems["vigil query (2 replicas)"] + "/metrics") as r:
                for line in r.read().decode().splitlines():
                    if line.startswith(("vigil_query_pushed_down_queries_total",
                                        "vigil_query_queries_total")):
                        print(line)
        except OSError as e:
            print(f"metrics: {e}")
        if cq is not None:
            c = "vigil query (compare)"
            print(f"compare: {tot[c] / tot['vigil a']:.2f}x one replica"
                  + (f", {tot[c] / tot['prometheus 2.42']:.2f}x prometheus 2.42"
                     if "prometheus 2.42" in tot else "")
                  + f", peak RSS {peak_rss(cq.pid) / 2**20:.1f} MiB")
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
