#!/usr/bin/env python3
"""Block storage benchmark: vigil and Debian's Prometheus 2.42 scrape the same synthetic targets
side by side with the same short block range, so both cut and compact several blocks; then it
reports, for each, bytes per sample on disk (chunk segments alone and whole blocks, from the
blocks' meta.json stats and file sizes) and resident memory per active series after compaction.

Usage: bench/blocks.py [--targets 10] [--series 1000] [--interval 1s] [--block 2m]
                       [--duration 600]
       bench/blocks.py --backfill [--targets 100] [--series 1000] [--interval 15s]
                       [--span 2h] [--block 30m] [--settle 150]
                       [--only vigil|prometheus] [--vigil-bin PATH]

With --backfill, the same demo data is not scraped in real time but written into both systems
through their remote write receivers by `vigil loadgen --demo-targets` — the last `--span` of
`targets` × `series` at `--interval`, step by step in time order, as if scraped — so "2 h of
the synthetic workload over 100k series" takes minutes. Both run with `--block` blocks, cut
and compact them, and are measured after `--settle` seconds.
Needs: target/release/vigil (cargo build --release) and the Debian package prometheus.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ingest  # noqa: E402  (shared helpers: ports, /proc readers, System)

ROOT = ingest.ROOT


def block_stats(data):
    """(samples, chunk bytes, total block bytes, blocks) over the block dirs of a data dir."""
    samples = chunk_bytes = total = blocks = 0
    for name in os.listdir(data):
        d = os.path.join(data, name)
        meta = os.path.join(d, "meta.json")
        if len(name) != 26 or not os.path.exists(meta):
            continue
        with open(meta) as f:
            m = json.load(f)
        samples += m.get("stats", {}).get("numSamples", 0)
        blocks += 1
        for root, _, files in os.walk(d):
            for fn in files:
                size = os.path.getsize(os.path.join(root, fn))
                total += size
                if os.path.basename(root) == "chunks":
                    chunk_bytes += size
    return samples, chunk_bytes, total, blocks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", type=int, default=10)
    ap.add_argument("--series", type=int, default=1000)
    ap.add_argument("--interval", default="1s")
    ap.add_argument("--block", default="2m")
    ap.add_argument("--duration", type=int, default=600)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "out", "blocks.json"))
    ap.add_argument("--backfill", action="store_true")
    ap.add_argument("--span", default="2h")
    ap.add_argument("--settle", type=int, default=150)
    ap.add_argument("--only", choices=["vigil", "prometheus"], help="run one system only (--backfill)")
    ap.add_argument("--vigil-bin", default=os.path.join(ROOT, "target", "release", "vigil"),
                    help="vigil binary to measure (e.g. a copy of an older build)")
    a = ap.parse_args()
    if a.backfill:
        return backfill(a)

    vigil_bin = os.path.join(ROOT, "target", "release", "vigil")
    if not os.path.exists(vigil_bin):
        sys.exit("build first: cargo build --release")
    if not shutil.which("prometheus"):
        sys.exit("needs Debian's prometheus (apt-get install prometheus)")
    work = tempfile.mkdtemp(prefix="vigil-bench-blocks-")
    base = ingest.free_port_range(a.targets)
    demo = subprocess.Popen(
        [vigil_bin, "demo", f"--targets={a.targets}", f"--series={a.series}", f"--listen=127.0.0.1:{base}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ingest.wait_http(f"http://127.0.0.1:{base}/metrics")
    cfg = os.path.join(work, "scrape.yml")
    with open(cfg, "w") as f:
        f.write(ingest.scrape_config(base, a.targets, a.interval))
    blocks = [f"--storage.tsdb.min-block-duration={a.block}", f"--storage.tsdb.max-block-duration=1h"]
    systems = []
    try:
        p = ingest.free_port()
        systems.append(ingest.System("vigil", [vigil_bin, "server", f"--config.file={cfg}",
                                               f"--storage.tsdb.path={work}/vigil",
                                               f"--web.listen-address=127.0.0.1:{p}"] + blocks,
                                     p, "/-/ready", "prometheus_tsdb_head_samples_appended_total", work))
        p = ingest.free_port()
        systems.append(ingest.System("prometheus", ["prometheus", f"--config.file={cfg}",
                                                    f"--storage.tsdb.path={work}/prom",
                                                    f"--web.listen-address=127.0.0.1:{p}"] + blocks,
                                     p, "/-/ready", "prometheus_tsdb_head_samples_appended_total", work))
        for s in systems:
            ingest.wait_http(s.url(s.ready_path))
        per_target = len([l for l in ingest.http_get(f"http://127.0.0.1:{base}/metrics").splitlines()
                          if l and not l.startswith("#")])
        active = a.targets * (per_target + 5)
        print(f"running {a.duration}s: {active} series every {a.interval}, blocks of {a.block} ...", flush=True)
        time.sleep(a.duration)
        summary = {"targets": a.targets, "active_series": active, "interval": a.interval,
                   "block": a.block, "duration_s": a.duration, "systems": {}}
        print(f"\n{'system':12} {'blocks':>7} {'samples':>12} {'chunk B/sample':>15} {'block B/sample':>15} {'RSS B/series':>13}")
        for s, d in zip(systems, ["vigil", "prom"]):
            smp, cb, tb, nb = block_stats(os.path.join(work, d))
            rss = ingest.rss_bytes(s.proc.pid) / active
            r = {"blocks": nb, "samples_in_blocks": smp, "chunk_bytes": cb, "block_bytes": tb,
                 "chunk_bytes_per_sample": cb / smp if smp else None,
                 "block_bytes_per_sample": tb / smp if smp else None,
                 "rss_bytes_per_series": rss}
            summary["systems"][s.name] = r
            print(f"{s.name:12} {nb:7} {smp:12} {r['chunk_bytes_per_sample'] or 0:15.3f} "
                  f"{r['block_bytes_per_sample'] or 0:15.3f} {rss:13.0f}")
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


def rss_anon_bytes(pid):
    """Anonymous resident memory (heap etc.), without file pages mapped from blocks/chunks."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0


def backfill(a):
    vigil_bin = a.vigil_bin
    if not os.path.exists(vigil_bin):
        sys.exit("build first: cargo build --release")
    if not shutil.which("prometheus"):
        sys.exit("needs Debian's prometheus (apt-get install prometheus)")
    work = tempfile.mkdtemp(prefix="vigil-bench-blocks-")
    cfg = os.path.join(work, "empty.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 1h\n")
    blocks = [f"--storage.tsdb.min-block-duration={a.block}", "--storage.tsdb.max-block-duration=2h",
              "--web.enable-remote-write-receiver"]
    systems = []
    summary = {"mode": "backfill", "targets": a.targets, "series_per_target": a.series,
               "interval": a.interval, "span": a.span, "block": a.block, "systems": {}}
    try:
        for name, prog in [("vigil", [vigil_bin, "server"]), ("prometheus", ["prometheus"])]:
            if a.only and name != a.only:
                continue
            p = ingest.free_port()
            s = ingest.System(name, prog + [f"--config.file={cfg}", f"--storage.tsdb.path={work}/{name}",
                                            f"--web.listen-address=127.0.0.1:{p}"] + blocks,
                              p, "/-/ready", "prometheus_tsdb_head_samples_appended_total", work)
            systems.append(s)
            ingest.wait_http(s.url(s.ready_path))
            print(f"backfilling {name}: {a.targets} targets x {a.series} series, last {a.span} at {a.interval} ...",
                  flush=True)
            t0 = time.time()
            cpu0 = ingest.cpu_seconds(s.proc.pid)
            out = subprocess.run([vigil_bin, "loadgen", f"--url={s.url('/api/v1/write')}",
                                  f"--demo-targets={a.targets}", f"--demo-series={a.series}",
                                  f"--span={a.span}", f"--step={a.interval}", "--batch=2000",
                                  "--concurrency=2"], capture_output=True, text=True)
            try:
                res = json.loads(out.stdout.strip().splitlines()[-1])
            except (IndexError, ValueError):
                sys.exit(f"loadgen into {name} failed: {out.stderr[-2000:]}")
            if out.returncode != 0:
                # E.g. a receiver that compacted its head past samples a slower sender still had
                # in flight: reported, and the figures below are per sample actually stored.
                res["loadgen_error"] = out.stderr.strip()[-500:]
                print(f"  warning: {res['loadgen_error']}", flush=True)
            res["receiver_cpu_seconds"] = ingest.cpu_seconds(s.proc.pid) - cpu0
            res["wall_seconds"] = time.time() - t0
            summary["systems"][name] = {"ingest": res}
            print(f"  {res['samples_sent']} samples in {res['wall_seconds']:.0f}s", flush=True)
        print(f"settling {a.settle}s (head compaction, block compaction) ...", flush=True)
        time.sleep(a.settle)
        active = next(iter(summary["systems"].values()))["ingest"]["series"]
        print(f"\n{'system':12} {'blocks':>7} {'samples':>12} {'chunk B/sample':>15} {'block B/sample':>15} "
              f"{'dir B/sample':>13} {'RSS B/series':>13} {'anon B/series':>14}")
        for s in systems:
            d = os.path.join(work, s.name)
            smp, cb, tb, nb = block_stats(d)
            total_dir = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs)
            sent = summary["systems"][s.name]["ingest"]["samples_sent"]
            rss = ingest.rss_bytes(s.proc.pid) / active
            anon = rss_anon_bytes(s.proc.pid) / active
            r = summary["systems"][s.name]
            r.update({"blocks": nb, "samples_in_blocks": smp, "chunk_bytes": cb, "block_bytes": tb,
                      "dir_bytes": total_dir,
                      "chunk_bytes_per_sample": cb / smp if smp else None,
                      "block_bytes_per_sample": tb / smp if smp else None,
                      "dir_bytes_per_sample": total_dir / sent if sent else None,
                      "rss_bytes_per_series": rss, "rss_anon_bytes_per_series": anon})
            print(f"{s.name:12} {nb:7} {smp:12} {r['chunk_bytes_per_sample'] or 0:15.3f} "
                  f"{r['block_bytes_per_sample'] or 0:15.3f} {r['dir_bytes_per_sample'] or 0:13.3f} {rss:13.0f} "
                  f"{anon:14.0f}")
        os.makedirs(os.path.dirname(a.out), exist_ok=True)
        with open(a.out, "w") as f:
            json.dump(summary, f, indent=2)
        print(f"\nwritten {a.out}")
    finally:
        for s in systems:
            s.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
