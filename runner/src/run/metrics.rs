//! `--metrics ADDR`: the watched maps in Prometheus text format over plain HTTP, served by
//! one small thread (a scrape every few seconds needs nothing more).
//!
//! Naming: every map becomes `ebpf_<map>`; a struct value gives one family per numeric
//! field (`ebpf_<map>_<field>`); keys become labels (`key="…"`, or one label per field of
//! a struct key); histograms are Prometheus histograms with `le` = the bucket's highest value.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;

use super::maps::{buckets, MapData, Metric, Shape, Watch};
use ebpf_package::{Error, Result};

/// How often the accept loop checks for a stop request.
const TICK: Duration = Duration::from_millis(50);

/// The running server; dropping it stops the thread.
pub struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Listens on `addr` and answers every GET with the maps' current values.
pub fn serve(addr: &str, watch: Watch) -> Result<Server> {
    let listener = TcpListener::bind(addr).map_err(|e| {
        Error::usage(format!("cannot serve metrics on {addr}"))
            .with_source(e)
            .with_help("pass a free HOST:PORT, e.g. --metrics 127.0.0.1:9435")
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::io("configure", std::path::Path::new(addr), e))?;
    let shown = listener
        .local_addr()
        .map_or(addr.to_string(), |a| a.to_string());
    eprintln!("Serving map metrics at http://{shown}/metrics");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::spawn(move || accept_loop(&listener, &watch, &flag));
    Ok(Server {
        stop,
        thread: Some(thread),
    })
}

fn accept_loop(listener: &TcpListener, watch: &Watch, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                // One bad client must not stop the server.
                let _ = answer(stream, watch);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(TICK),
            Err(_) => std::thread::sleep(TICK),
        }
    }
}

fn answer(mut stream: TcpStream, watch: &Watch) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let request = read_head(&mut stream)?;
    let (status, body) = if request.starts_with("GET ") {
        ("200 OK", render(&watch.read()))
    } else {
        ("405 Method Not Allowed", "only GET is served\n".to_string())
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

/// The request line and headers (the body, if any, is not needed).
fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

// ---- exposition format ----------------------------------------------------------------------

/// Metric families in first-seen order, each with its TYPE and sample lines.
#[derive(Default)]
struct Families(Vec<(String, &'static str, Vec<String>)>);

impl Families {
    fn push(&mut self, name: &str, kind: &'static str, line: String) {
        match self.0.iter_mut().find(|f| f.0 == name) {
            Some(family) => family.2.push(line),
            None => self.0.push((name.to_string(), kind, vec![line])),
        }
    }

    fn text(&self) -> String {
        let mut out = String::new();
        for (name, kind, lines) in &self.0 {
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            for line in lines {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

/// The maps in Prometheus text exposition format.
pub fn render(maps: &[MapData]) -> String {
    let mut families = Families::default();
    for map in maps {
        let base = format!("ebpf_{}", metric_name(&map.name));
        for (key, value) in &map.entries {
            let labels = key_labels(key, map.shape == Shape::Counter);
            match &map.shape {
                Shape::Histogram { linear } => {
                    histogram(&mut families, &base, &labels, value, *linear)
                }
                _ => numbers(&mut families, &base, kind_of(map), &labels, value),
            }
        }
    }
    families.text()
}

/// A `counter_*` map (bumblebee's naming) is a Prometheus counter; other numbers are gauges.
fn kind_of(map: &MapData) -> &'static str {
    match map.metric {
        Some(Metric::Counter) => "counter",
        _ => "gauge",
    }
}

fn numbers(
    families: &mut Families,
    name: &str,
    kind: &'static str,
    labels: &[(String, String)],
    value: &Value,
) {
    match value {
        Value::Number(n) => families.push(name, kind, sample(name, labels, &n.to_string())),
        Value::Bool(b) => {
            families.push(name, kind, sample(name, labels, if *b { "1" } else { "0" }))
        }
        Value::Object(fields) => {
            for (field, v) in fields {
                numbers(
                    families,
                    &format!("{name}_{}", metric_name(field)),
                    kind,
                    labels,
                    v,
                );
            }
        }
        _ => {}
    }
}

fn histogram(
    families: &mut Families,
    name: &str,
    labels: &[(String, String)],
    value: &Value,
    linear: bool,
) {
    let mut total = 0u64;
    for bucket in buckets(value, linear) {
        total += bucket.count;
        let mut with_le = labels.to_vec();
        with_le.push(("le".into(), bucket.high.saturating_sub(1).to_string()));
        let line = sample(&format!("{name}_bucket"), &with_le, &total.to_string());
        families.push(name, "histogram", line);
    }
    let mut inf = labels.to_vec();
    inf.push(("le".into(), "+Inf".into()));
    families.push(
        name,
        "histogram",
        sample(&format!("{name}_bucket"), &inf, &total.to_string()),
    );
    families.push(
        name,
        "histogram",
        sample(&format!("{name}_count"), labels, &total.to_string()),
    );
}

/// Labels for a key: one per scalar field of a struct key, else `key`. A counter's single
/// key (index 0) is no label at all.
fn key_labels(key: &Value, counter: bool) -> Vec<(String, String)> {
    match key {
        _ if counter => Vec::new(),
        Value::Object(fields) => fields
            .iter()
            .filter(|(_, v)| !v.is_object() && !v.is_array())
            .map(|(k, v)| (metric_name(k), label_text(v)))
            .collect(),
        other => vec![("key".into(), label_text(other))],
    }
}

fn label_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn sample(name: &str, labels: &[(String, String)], value: &str) -> String {
    if labels.is_empty() {
        return format!("{name} {value}");
    }
    let labels: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{name}{{{}}} {value}", labels.join(","))
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A name made of `[a-zA-Z0-9_]`, as Prometheus requires.
fn metric_name(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_counters_and_histograms() {
        let maps = vec![
            MapData {
                name: "counts".into(),
                shape: Shape::Table,
                metric: None,
                entries: vec![
                    (json!(42), json!(7)),
                    (json!({"pid": 1, "comm": "a\"b"}), json!(3)),
                ],
            },
            MapData {
                name: "total".into(),
                shape: Shape::Counter,
                metric: None,
                entries: vec![(json!(0), json!(10))],
            },
            MapData {
                name: "lat".into(),
                shape: Shape::Histogram { linear: false },
                metric: None,
                entries: vec![(json!(0), json!({"slots": [1, 2]}))],
            },
        ];
        let text = render(&maps);
        let expected = "# TYPE ebpf_counts gauge\n\
            ebpf_counts{key=\"42\"} 7\n\
            ebpf_counts{pid=\"1\",comm=\"a\\\"b\"} 3\n\
            # TYPE ebpf_total gauge\n\
            ebpf_total 10\n\
            # TYPE ebpf_lat histogram\n\
            ebpf_lat_bucket{key=\"0\",le=\"1\"} 1\n\
            ebpf_lat_bucket{key=\"0\",le=\"3\"} 3\n\
            ebpf_lat_bucket{key=\"0\",le=\"+Inf\"} 3\n\
            ebpf_lat_count{key=\"0\"} 3\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn bumblebee_counters_are_prometheus_counters() {
        let map = |name: &str, metric| MapData {
            name: name.into(),
            shape: Shape::Table,
            metric: Some(metric),
            entries: vec![(json!({"pid": 7}), json!(2))],
        };
        let text = render(&[
            map("counter_opens", Metric::Counter),
            map("gauge_open", Metric::Gauge),
        ]);
        assert_eq!(
            text,
            "# TYPE ebpf_counter_opens counter\nebpf_counter_opens{pid=\"7\"} 2\n\
             # TYPE ebpf_gauge_open gauge\nebpf_gauge_open{pid=\"7\"} 2\n"
        );
    }
}
