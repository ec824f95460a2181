//! Output beyond plain event fields, from the real kernel: maps that are not event
//! channels (`--interval` prints the hash table, the counter and histogram bars with real
//! counts; `--metrics` serves them in Prometheus text format while the program runs), and
//! field hints (times, addresses, ports, errnos shown readably).
//! Needs root, clang, bpftool and kernel BTF.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::common::{compile, run_fixture_while, Shared};
use crate::common::{needs, Need};
use ebpf_package::Result;
use ebpf_runner::run::{run_object, Output, RunOptions};

/// Makes syscalls, including reads that return data (for the read-size histograms).
fn busy() {
    let _ = std::fs::read("/etc/passwd");
    std::thread::sleep(Duration::from_millis(20));
}

fn run_maps(opts: RunOptions, during: impl FnMut()) -> (Result<()>, String) {
    run_fixture_while("maps_demo", opts, during)
}

/// The range and count of a histogram line `[low, high) count |@@@|`, as
/// (low, high - 1, count).
fn bar_count(line: &str) -> Option<(u64, u64, u64)> {
    let (range, rest) = line.strip_prefix('[')?.split_once(')')?;
    let (low, high) = range.split_once(',')?;
    let count = rest.split('|').next()?.trim().parse().ok()?;
    let high: u64 = high.trim().parse().ok()?;
    Some((low.trim().parse().ok()?, high - 1, count))
}

#[test]
fn interval_prints_tables_counters_and_histograms() {
    if !needs(&[Need::Kernel, Need::Build]) {
        return;
    }
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
            .any(|l| l.contains(&format!("|{}|", "@".repeat(40)))),
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
    if !needs(&[Need::Kernel, Need::Build]) {
        return;
    }
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
    if !needs(&[Need::Kernel, Need::Build]) {
        return;
    }
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

// ---- field hints ------------------------------------------------------------------------------

fn run_hints(output: Output) -> String {
    let bytes = compile("hints");
    let opts = RunOptions {
        output,
        duration: Some(Duration::from_millis(1500)),
        args: vec!["--target-pid".into(), std::process::id().to_string()],
        ..Default::default()
    };
    let out = Shared::default();
    let mut writer = out.clone();
    let runner = std::thread::spawn(move || run_object("hints", &bytes, None, &opts, &mut writer));
    while !runner.is_finished() {
        // Fails with ENOENT: the errno the event carries.
        let _ = std::fs::File::open("/nonexistent/ebpf-runner-hints");
        std::thread::sleep(Duration::from_millis(20));
    }
    runner.join().unwrap().unwrap();
    out.text()
}

#[test]
fn json_keeps_raw_values_and_adds_readable_ones() {
    if !needs(&[Need::Kernel, Need::Build]) {
        return;
    }
    let text = run_hints(Output::Json);
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Other tests in this process open files too: take a failed open.
    let event = events
        .iter()
        .find(|e| e["ret"] == -2)
        .unwrap_or_else(|| panic!("no ENOENT event: {events:?}"));
    assert_eq!(event["ret_text"], "-ENOENT");
    assert_eq!(event["saddr"], u32::from_ne_bytes([127, 0, 0, 1]));
    assert_eq!(event["saddr_text"], "127.0.0.1");
    assert_eq!(event["dport_text"], "8080");
    assert_eq!(event["daddr_v6_text"], "::1");
    assert!(event["lat_ns"].as_u64().unwrap() > 0);
    let lat = event["lat_ns_text"].as_str().unwrap();
    assert!(["ns", "us", "ms"].iter().any(|u| lat.ends_with(u)), "{lat}");
    // The kernel's monotonic timestamp, as this machine's time of day.
    let ts = event["ts_text"].as_str().unwrap();
    assert_eq!(ts.len(), 15, "{ts}");
    let seconds = |hms: &str| -> i64 {
        let parts: Vec<i64> = hms[..8].split(':').map(|p| p.parse().unwrap()).collect();
        parts[0] * 3600 + parts[1] * 60 + parts[2]
    };
    let now = ebpf_package::decode::time_of_day();
    let apart = (seconds(ts) - seconds(&now)).rem_euclid(86_400);
    assert!(apart.min(86_400 - apart) < 60, "{ts} vs {now}");
}

#[test]
fn tables_show_hinted_fields_readably() {
    if !needs(&[Need::Kernel, Need::Build]) {
        return;
    }
    let text = run_hints(Output::Table);
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    for column in ["TS", "LAT_NS", "RET", "SADDR", "DPORT", "DADDR_V6"] {
        assert!(header.split_whitespace().any(|h| h == column), "{header}");
    }
    // Other tests in this process open files too: find a failed open.
    let row = lines
        .find(|l| l.contains("-ENOENT"))
        .unwrap_or_else(|| panic!("no -ENOENT row:\n{text}"));
    for text in ["127.0.0.1", " 8080 ", "::1"] {
        assert!(row.contains(text), "{text} missing: {row}");
    }
}

/// Maps declared with `max_entries = 0` (Inspektor Gadget's user-stack map) are sized at
/// load instead of failing with -EINVAL, and work: the table of getpid calls per stack
/// fills up.
#[test]
fn maps_declared_with_zero_entries_are_sized_at_load() {
    if !needs(&[Need::Kernel, Need::Build]) {
        return;
    }
    let opts = RunOptions {
        output: Output::Json,
        duration: Some(Duration::from_secs(2)),
        ..Default::default()
    };
    let (result, text) = run_fixture_while("unsized_maps", opts, || {
        // SAFETY: getpid has no preconditions.
        unsafe { libc::getpid() };
        std::thread::sleep(Duration::from_millis(10));
    });
    result.unwrap();
    let table = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["map"] == "calls_by_stack")
        .unwrap_or_else(|| panic!("no calls_by_stack at the end:\n{text}"));
    let total: u64 = table["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["value"].as_u64().unwrap())
        .sum();
    assert!(total > 0, "{text}");
}

/// Without `--interval`, a run ends with its output maps: the bare-array log2 histogram
/// drawn as `[low, high)` ranges with bars (zero slots outside the data not drawn), the
/// tables and counters — and not the scratch hash `start`.
#[test]
fn a_run_ends_with_its_output_maps_and_array_histograms_as_ranges() {
    if !needs(&[Need::Kernel, Need::Build]) {
        return;
    }
    let opts = RunOptions {
        output: Output::Table,
        duration: Some(Duration::from_secs(2)),
        ..Default::default()
    };
    let (result, text) = run_maps(opts, busy);
    result.unwrap();
    let hist = histogram_section(&text, "@read_size_hist:");
    let bars: Vec<_> = hist.iter().filter_map(|l| bar_count(l)).collect();
    assert!(!bars.is_empty() && bars.iter().any(|b| b.2 > 0), "{text}");
    for (low, high, _) in &bars {
        assert!(*low == 0 || low.is_power_of_two(), "{text}");
        assert_eq!(high + 1, if *low == 0 { 2 } else { low * 2 }, "{text}");
    }
    assert!(
        bars.first().unwrap().2 > 0 && bars.last().unwrap().2 > 0,
        "{text}"
    );
    assert!(text.contains("syscalls: "), "{text}");
    assert!(!text.contains("start: "), "scratch state printed:\n{text}");
}
