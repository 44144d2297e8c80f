//! Parser throughput on a real Prometheus scrape (the upstream 237-family
//! fixture), a synthetic node-exporter-like body and an OpenMetrics body,
//! in bytes and in samples per second.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use expfmt::{Entry, Format, Parser};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/peer-tests/textparse")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// About 10,000 samples shaped like node-exporter output: per-CPU counters,
/// per-device and per-filesystem gauges, a histogram, a few escapes.
fn node_exporter_like() -> Vec<u8> {
    let mut s = String::new();
    s.push_str("# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.\n");
    s.push_str("# TYPE node_cpu_seconds_total counter\n");
    let modes = [
        "idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user",
    ];
    for cpu in 0..128 {
        for (i, mode) in modes.iter().enumerate() {
            let v = 1234567.89 * (cpu + 1) as f64 / (i + 1) as f64;
            s.push_str(&format!(
                "node_cpu_seconds_total{{cpu=\"{cpu}\",mode=\"{mode}\"}} {v}\n"
            ));
        }
    }
    for metric in [
        "node_network_receive_bytes_total",
        "node_network_transmit_bytes_total",
    ] {
        s.push_str(&format!(
            "# HELP {metric} Network device statistic.\n# TYPE {metric} counter\n"
        ));
        for dev in 0..600 {
            s.push_str(&format!(
                "{metric}{{device=\"veth{dev:05x}\"}} {}\n",
                dev * 7919 + 3
            ));
        }
    }
    for metric in [
        "node_filesystem_avail_bytes",
        "node_filesystem_size_bytes",
        "node_filesystem_files",
    ] {
        s.push_str(&format!(
            "# HELP {metric} Filesystem statistic.\n# TYPE {metric} gauge\n"
        ));
        for fs in 0..1200 {
            s.push_str(&format!(
                "{metric}{{device=\"/dev/mapper/vg{fs}-lv\",fstype=\"ext4\",mountpoint=\"/var/lib/kubelet/pods/{fs:08x}/volumes\"}} {:e}\n",
                (fs as f64 + 1.0) * 1.5e10
            ));
        }
    }
    s.push_str(
        "# HELP node_disk_io_time_seconds histogram\n# TYPE node_disk_io_time_seconds histogram\n",
    );
    for disk in 0..300 {
        for le in [
            "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf",
        ] {
            s.push_str(&format!(
                "node_disk_io_time_seconds_bucket{{device=\"sd{disk}\",le=\"{le}\"}} {}\n",
                disk * 13
            ));
        }
        s.push_str(&format!(
            "node_disk_io_time_seconds_sum{{device=\"sd{disk}\"}} 0.{disk}25\n"
        ));
        s.push_str(&format!(
            "node_disk_io_time_seconds_count{{device=\"sd{disk}\"}} {}\n",
            disk * 13
        ));
    }
    s.push_str("# TYPE node_uname_info gauge\n");
    for i in 0..100 {
        s.push_str(&format!(
            "node_uname_info{{machine=\"x86_64\",nodename=\"host\\\"{i}\\\"\",release=\"6.1.0\",version=\"#1 SMP\\nPREEMPT\"}} 1\n"
        ));
    }
    s.into_bytes()
}

fn count_samples(body: &[u8], format: Format) -> u64 {
    let mut p = Parser::new(body, format);
    let mut n = 0;
    while let Some(e) = p.next_entry().expect("benchmark input parses") {
        if let Entry::Sample(s) = e {
            black_box(s.value);
            black_box(s.labels.len());
            n += 1;
        }
    }
    n
}

fn bench_body(c: &mut Criterion, name: &str, body: &[u8], format: Format) {
    let samples = count_samples(body, format);
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("bytes", |b| {
        b.iter(|| count_samples(black_box(body), format))
    });
    group.throughput(Throughput::Elements(samples));
    group.bench_function("samples", |b| {
        b.iter(|| count_samples(black_box(body), format))
    });
    group.finish();
}

fn parse(c: &mut Criterion) {
    bench_body(
        c,
        "text_237mfs",
        &fixture("alltypes.237mfs.prom.txt"),
        Format::Text,
    );
    bench_body(c, "text_node_10k", &node_exporter_like(), Format::Text);
    bench_body(
        c,
        "om_5mfs",
        &fixture("alltypes.5mfs.om.txt"),
        Format::OpenMetrics,
    );
}

criterion_group!(benches, parse);
criterion_main!(benches);
