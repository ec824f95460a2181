//! Maps that are not event channels, read from the real kernel: `--interval` prints the
//! hash table, the counter and histogram bars with real counts; `--metrics` serves them in
//! Prometheus text format while the program runs.
//! Needs root, clang, bpftool and kernel BTF.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

mod common;

use common::{compile, Shared};
use ebpf_runner::run::{run_object, Output, RunOptions};
use ebpf_runner::Result;

/// Makes syscalls, including reads that return data (for the read-size histograms).
fn busy() {
    let _ = std::fs::read("/etc/passwd");
    std::thread::sleep(Duration::from_millis(20));
}

fn run_maps(opts: RunOptions, mut during: impl FnMut()) -> (Result<()>, String) {
    let bytes = compile("maps_demo");
    let out = Shared::default();
    let mut writer = out.clone();
    let runner =
        std::thread::spawn(move || run_object("maps_demo", &bytes, None, &opts, &mut writer));
    while !runner.is_finished() {
        during();
    }
    (runner.join().unwrap(), out.text())
}

/// The count of a histogram line `low -> high : count |***|`.
fn bar_count(line: &str) -> Option<(u64, u64, u64)> {
    let (range, rest) = line.split_once(':')?;
    let (low, high) = range.split_once("->")?;
    let count = rest.split('|').next()?.trim().parse().ok()?;
    Some((low.trim().parse().ok()?, high.trim().parse().ok()?, count))
}

#[test]
fn interval_prints_tables_counters_and_histograms() {
    let opts = RunOptions {
        output: Output::Table,
        duration: Some(Duration::from_secs(3)),
        interval: Some(Duration::from_secs(1)),
        ..Default::default()
    };
    let (result, text) = run_maps(opts, busy);
    result.unwrap();
    let blocks: Vec<&str> = text.split("--- ").skip(1).collect();
    assert!(blocks.len() >= 2, "expected one block per second:\n{text}");
    let last = blocks.last().unwrap();

    // The hash of syscalls per pid has this process, with a real count.
    let pid = std::process::id().to_string();
    let ours = last
        .lines()
        .find(|l| l.split_whitespace().next() == Some(pid.as_str()))
        .unwrap_or_else(|| panic!("no row for pid {pid}:\n{last}"));
    let count: u64 = ours.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(count > 0, "{ours}");
    assert!(last.contains("syscalls: "), "{last}");
    assert!(last.contains("  KEY"), "{last}");

    let total: u64 = last
        .lines()
        .find_map(|l| l.strip_prefix("total = "))
        .unwrap_or_else(|| panic!("no counter:\n{last}"))
        .parse()
        .unwrap();
    assert!(total >= count);

    // log2: power-of-two ranges with bars; the longest bar is full width.
    let log2 = histogram_section(last, "@read_sizes:");
    let bars: Vec<_> = log2.iter().filter_map(|l| bar_count(l)).collect();
    assert!(bars.iter().any(|b| b.2 > 0), "{last}");
    for (low, high, _) in &bars {
        assert!(*low == 0 || low.is_power_of_two(), "{low}");
        assert_eq!(high + 1, if *low == 0 { 2 } else { low * 2 });
    }
    assert!(
        log2.iter()
            .any(|l| l.contains(&format!("|{}|", "*".repeat(40)))),
        "{last}"
    );

    // linear: steps of 64 bytes.
    let linear = histogram_section(last, "@small_reads:");
    let bars: Vec<_> = linear.iter().filter_map(|l| bar_count(l)).collect();
    assert!(bars.iter().any(|b| b.2 > 0), "{last}");
    assert!(
        bars.iter()
            .all(|(low, high, _)| low % 64 == 0 && high - low == 63),
        "{last}"
    );
}

/// The lines of the histogram after `title` (header and bars).
fn histogram_section<'t>(text: &'t str, title: &str) -> Vec<&'t str> {
    text.lines()
        .skip_while(|l| *l != title)
        .skip(1)
        .take_while(|l| l.contains('|'))
        .collect()
}

#[test]
fn json_output_gives_one_line_per_map() {
    let opts = RunOptions {
        output: Output::Json,
        duration: Some(Duration::from_millis(1500)),
        interval: Some(Duration::from_secs(1)),
        ..Default::default()
    };
    let (result, text) = run_maps(opts, busy);
    result.unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let total = lines.iter().find(|l| l["map"] == "total").expect("total");
    assert!(total["entries"][0]["value"].as_u64().unwrap() > 0);
    let hist = lines.iter().find(|l| l["map"] == "read_sizes").unwrap();
    let slots = hist["entries"][0]["value"]["slots"].as_array().unwrap();
    assert_eq!(slots.len(), 32);
}

// ---- Prometheus ---------------------------------------------------------------------------

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(addr: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

/// Checks the exposition format line by line: `# TYPE name kind` before a family's
/// samples, samples as `name{label="v",…} number`, families not interleaved.
fn check_exposition(body: &str) {
    let mut typed: Vec<String> = Vec::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect(line);
            assert!(["gauge", "counter", "histogram"].contains(&kind), "{line}");
            assert!(!typed.contains(&name.to_string()), "family twice: {line}");
            typed.push(name.into());
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect(line);
        value
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
        let family = typed.last().expect("a sample before any # TYPE");
        assert!(name.starts_with(family.as_str()), "{line} outside {family}");
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                let inner = labels.strip_prefix('{').and_then(|l| l.strip_suffix('}'));
                for pair in inner.expect(line).split(',') {
                    let (k, v) = pair.split_once('=').expect(line);
                    assert!(k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
                    assert!(v.starts_with('"') && v.ends_with('"'), "{line}");
                }
            }
        }
    }
}

fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn metrics_serves_prometheus_text_during_the_run() {
    let addr = format!("127.0.0.1:{}", free_port());
    let opts = RunOptions {
        output: Output::Table,
        duration: Some(Duration::from_secs(4)),
        metrics: Some(addr.clone()),
        ..Default::default()
    };
    let start = Instant::now();
    let mut response = None;
    let (result, _) = run_maps(opts, || {
        busy();
        // Ask once the program has counted for a while.
        if response.is_none() && start.elapsed() > Duration::from_secs(2) {
            response = http_get(&addr).ok();
        }
    });
    result.unwrap();
    let response = response.expect("the metrics server answered during the run");
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    check_exposition(body);

    let pid = std::process::id();
    let ours = sample(body, &format!("ebpf_syscalls{{key=\"{pid}\"}}")).expect(body);
    assert!(ours > 0.0, "{body}");
    assert!(sample(body, "ebpf_total").unwrap() >= ours);
    assert!(body.contains("# TYPE ebpf_read_sizes histogram"));
    let all = sample(body, "ebpf_read_sizes_bucket{key=\"0\",le=\"+Inf\"}").expect(body);
    assert!(all > 0.0);
    assert_eq!(sample(body, "ebpf_read_sizes_count{key=\"0\"}"), Some(all));
    // Buckets are cumulative.
    let buckets: Vec<f64> = body
        .lines()
        .filter(|l| l.starts_with("ebpf_read_sizes_bucket"))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse().unwrap())
        .collect();
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{body}");

    // The server is gone with the run.
    assert!(TcpStream::connect(&addr).is_err());
}
