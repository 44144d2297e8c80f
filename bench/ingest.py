#!/usr/bin/env python3
"""Ingestion benchmark: vigil, Debian's Prometheus 2.42 and Debian's VictoriaMetrics scrape the
same synthetic targets side by side, in one run, on this machine.

For each system it reports CPU seconds per million samples ingested and resident memory per
active series, as medians over several measurement windows after a warm-up.

Usage: bench/ingest.py [--targets 100] [--series 1000] [--interval 1s] [--warmup 60]
                       [--windows 5] [--window 30] [--systems vigil,prometheus,victoria-metrics]
Needs: target/release/vigil (cargo build --release), and the Debian packages prometheus and
victoria-metrics for the peers (missing peers are skipped and said so).
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


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


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / TICKS


def rss_bytes(pid):
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def metric_sum(text, name):
    total, found = 0.0, False
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        head = line.split(" ")[0]
        if head == name or head.startswith(name + "{"):
            after = line.rsplit("}", 1)[1].split() if "}" in line else line.split()[1:]
            total += float(after[0])
            found = True
    return total if found else None


def wait_http(url, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            http_get(url, timeout=2)
            return
        except Exception:
            time.sleep(0.2)
    raise RuntimeError(f"{url} not ready")


class System:
    def __init__(self, name, cmd, port, ready_path, samples_metric, workdir):
        self.name, self.cmd, self.port = name, cmd, port
        self.ready_path, self.samples_metric = ready_path, samples_metric
        self.log = open(os.path.join(workdir, f"{name}.log"), "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def samples(self):
        return metric_sum(http_get(self.url("/metrics")), self.samples_metric)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def scrape_config(base, n, interval):
    targets = ",".join(f"'127.0.0.1:{base + i}'" for i in range(n))
    return (
        f"global:\n  scrape_interval: {interval}\n  scrape_timeout: {interval}\n"
        f"scrape_configs:\n  - job_name: bench\n    static_configs:\n      - targets: [{targets}]\n"
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", type=int, default=100)
    ap.add_argument("--series", type=int, default=1000)
    ap.add_argument("--interval", default="1s")
    ap.add_argument("--warmup", type=int, default=60)
    ap.add_argument("--windows", type=int, default=5)
    ap.add_argument("--window", type=int, default=30)
    ap.add_argument("--systems", default="vigil,prometheus,victoria-metrics")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "out", "ingest.json"))
    a = ap.parse_args()

    vigil_bin = os.path.join(ROOT, "target", "release", "vigil")
    if not os.path.exists(vigil_bin):
        sys.exit("build first: cargo build --release")
    work = tempfile.mkdtemp(prefix="vigil-bench-")
    base = free_port_range(a.targets)
    demo = subprocess.Popen(
        [vigil_bin, "demo", f"--targets={a.targets}", f"--series={a.series}", f"--listen=127.0.0.1:{base}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_http(f"http://127.0.0.1:{base}/metrics")
    cfg = os.path.join(work, "scrape.yml")
    with open(cfg, "w") as f:
        f.write(scrape_config(base, a.targets, a.interval))

    systems = []
    want = a.systems.split(",")
    try:
        if "vigil" in want:
            p = free_port()
            systems.append(System("vigil", [vigil_bin, "server", f"--config.file={cfg}",
                                            f"--storage.tsdb.path={work}/vigil", f"--web.listen-address=127.0.0.1:{p}"],
                                  p, "/-/ready", "prometheus_tsdb_head_samples_appended_total", work))
        if "prometheus" in want:
            if shutil.which("prometheus"):
                p = free_port()
                systems.append(System("prometheus", ["prometheus", f"--config.file={cfg}",
                                                     f"--storage.tsdb.path={work}/prom", f"--web.listen-address=127.0.0.1:{p}"],
                                      p, "/-/ready", "prometheus_tsdb_head_samples_appended_total", work))
            else:
                print("SKIPPED prometheus: not installed (apt-get install prometheus)")
        if "victoria-metrics" in want:
            if shutil.which("victoria-metrics"):
                p = free_port()
                systems.append(System("victoria-metrics", ["victoria-metrics", f"-httpListenAddr=127.0.0.1:{p}",
                                                           f"-storageDataPath={work}/vm", "-retentionPeriod=100y",
                                                           f"-promscrape.config={cfg}"],
                                      p, "/health", "vm_rows_added_to_storage_total", work))
            else:
                print("SKIPPED victoria-metrics: not installed (apt-get install victoria-metrics)")
        for s in systems:
            wait_http(s.url(s.ready_path))
        print(f"warming up {a.warmup}s: {a.targets} targets x {a.series} series every {a.interval} ...", flush=True)
        time.sleep(a.warmup)
        # Active series: the targets' own series plus the 5 report series per target.
        per_target = len([l for l in http_get(f"http://127.0.0.1:{base}/metrics").splitlines() if l and not l.startswith("#")])
        active = a.targets * (per_target + 5)
        res = {s.name: {"cpu_per_1m": [], "bytes_per_series": []} for s in systems}
        prev = {s.name: (cpu_seconds(s.proc.pid), s.samples()) for s in systems}
        for w in range(a.windows):
            time.sleep(a.window)
            for s in systems:
                cpu, smp = cpu_seconds(s.proc.pid), s.samples()
                dc, ds = cpu - prev[s.name][0], (smp or 0) - (prev[s.name][1] or 0)
                prev[s.name] = (cpu, smp)
                if ds > 0:
                    res[s.name]["cpu_per_1m"].append(dc / ds * 1e6)
                res[s.name]["bytes_per_series"].append(rss_bytes(s.proc.pid) / active)
            print(f"window {w + 1}/{a.windows} done", flush=True)
        summary = {"targets": a.targets, "series_per_target": per_target, "active_series": active,
                   "interval": a.interval, "windows": a.windows, "window_s": a.window, "systems": {}}
        print(f"\n{'system':18} {'CPU-s / 1M samples':>20} {'RSS bytes / series':>20}")
        for s in systems:
            r = res[s.name]
            cpu = statistics.median(r["cpu_per_1m"]) if r["cpu_per_1m"] else float("nan")
            mem = statistics.median(r["bytes_per_series"])
            summary["systems"][s.name] = {"cpu_s_per_1m_samples": cpu, "rss_bytes_per_series": mem, "raw": r}
            print(f"{s.name:18} {cpu:20.3f} {mem:20.0f}")
        os.makedirs(os.path.dirname(a.out), exist_ok=True)
        with open(a.out, "w") as f:
            json.dump(summary, f, indent=2)
        print(f"\nwritten {a.out}")
    finally:
        for s in systems:
            s.stop()
        demo.terminate()
        demo.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
