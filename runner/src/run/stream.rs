//! Reads events from ring buffers and perf event arrays and prints them as they arrive.
//!
//! Each event type is compiled once ([`EventCodec`]); every event is written into one
//! reused line buffer and then into a buffered stdout, flushed after each poll round (the
//! buffers went idle) or every [`FLUSH_EVERY`] under a steady stream, so output still
//! shows at once without a write syscall per event.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{self, BufWriter, Write};
use std::time::{Duration, Instant};

use libbpf_rs::{
    Map, MapCore, MapType, PerfBuffer, PerfBufferBuilder, RingBuffer, RingBufferBuilder,
};

use super::load::Loaded;
use super::maps::{self, MapData, Watch};
use super::signals::StopSignals;
use super::trace_pipe::TracePipe;
use super::{Output, RunOptions};
use ebpf_package::codec::EventCodec;
use ebpf_package::decode::{json_line, raw_value, time_of_day, Table};
use ebpf_package::printk::{Formats, Line};
use ebpf_package::spec::{ColumnHint, EventInfo, TypeLayout};
use ebpf_package::{Error, Result};

/// How long one poll waits, which bounds how late a stop request is noticed.
const POLL: Duration = Duration::from_millis(100);

/// The longest buffered output waits while events keep coming without a pause.
const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// How one event map's samples are shown.
struct Decoder {
    map: String,
    type_name: Option<String>,
    /// `None` when the event type is unknown: events are shown as raw bytes.
    codec: Option<EventCodec>,
    table: Table,
}

/// Where events go; shared by every buffer callback.
struct Sink<'o> {
    out: &'o mut dyn Write,
    output: Output,
    /// The type whose table header was printed last.
    header_for: Option<Option<String>>,
    /// Maps whose events did not fit their type (warned once each).
    warned: Vec<String>,
    error: Option<io::Error>,
    events: u64,
    /// The line being written, reused for every event.
    line: Vec<u8>,
    /// `HH:MM:SS` for the second in `.0` (table rows: one clock read per second).
    clock: (libc::time_t, String),
    last_flush: Instant,
}

impl Sink<'_> {
    /// Prints one sample; false stops the stream (the output is gone).
    fn event(&mut self, decoder: &Decoder, bytes: &[u8]) -> bool {
        self.line.clear();
        let mut line = std::mem::take(&mut self.line);
        let typed = match &decoder.codec {
            Some(codec) => {
                let written = match self.output {
                    Output::Json => codec.write_json(bytes, &mut line),
                    Output::Table => codec.write_row(self.time(), bytes, &mut line),
                };
                written
                    .map_err(|e| {
                        line.clear();
                        self.warn_once(&decoder.map, &e.to_string());
                    })
                    .is_ok()
            }
            None => false,
        };
        let result = self.write_event(decoder, typed, bytes, &mut line);
        self.line = line;
        self.events += 1;
        let result = result.and_then(|()| self.flush_if_due());
        self.finish_write(result)
    }

    /// Writes the event's line (`line` holds it when `typed`, else it is rendered raw),
    /// after the table header when the event type changed.
    fn write_event(
        &mut self,
        decoder: &Decoder,
        typed: bool,
        bytes: &[u8],
        line: &mut Vec<u8>,
    ) -> io::Result<()> {
        if !typed {
            let value = raw_value(bytes);
            let text = match self.output {
                Output::Json => json_line(&value),
                Output::Table => Table::raw().row(self.time(), &value),
            };
            line.extend_from_slice(text.as_bytes());
        }
        if self.output == Output::Table {
            if typed {
                self.header(&decoder.table, decoder.type_name.clone())?;
            } else {
                self.header(&Table::raw(), None)?;
            }
        }
        line.push(b'\n');
        self.out.write_all(line)
    }

    /// The wall-clock time of day, read again only when the second changes.
    fn time(&mut self) -> &str {
        // SAFETY: time(NULL) only returns a value.
        let now = unsafe { libc::time(std::ptr::null_mut()) };
        if now != self.clock.0 {
            self.clock = (now, time_of_day());
        }
        &self.clock.1
    }

    /// Flushes when output has waited [`FLUSH_EVERY`] (events arriving without a pause).
    fn flush_if_due(&mut self) -> io::Result<()> {
        if self.events.is_multiple_of(64) && self.last_flush.elapsed() >= FLUSH_EVERY {
            return self.flush();
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.last_flush = Instant::now();
        self.out.flush()
    }

    /// Prints the header when the event type changes (once, for a single event type).
    fn header(&mut self, table: &Table, type_name: Option<String>) -> io::Result<()> {
        if self.header_for.as_ref() == Some(&type_name) {
            return Ok(());
        }
        self.header_for = Some(type_name);
        writeln!(self.out, "{}", table.header())
    }

    fn finish_write(&mut self, result: io::Result<()>) -> bool {
        match result {
            Ok(()) => true,
            Err(e) => {
                self.error = Some(e);
                false
            }
        }
    }

    /// Prints one of the object's `bpf_printk` lines; false stops the stream.
    fn printk(&mut self, line: &Line) -> bool {
        let result = match self.output {
            Output::Json => {
                let mut value = serde_json::to_value(line).expect("a line serializes");
                value["source"] = "bpf_printk".into();
                writeln!(self.out, "{value}")
            }
            Output::Table => {
                let printk = Some("bpf_printk".to_string());
                let header = format!("{:<8} {:<16} {:<7} MESSAGE", "TIME", "COMM", "PID");
                let time = self.time().to_string();
                (if self.header_for.as_ref() != Some(&printk) {
                    self.header_for = Some(printk);
                    writeln!(self.out, "{header}")
                } else {
                    Ok(())
                })
                .and_then(|()| {
                    writeln!(
                        self.out,
                        "{time:<8} {:<16} {:<7} {}",
                        line.comm, line.pid, line.message
                    )
                })
            }
        };
        self.events += 1;
        self.finish_write(result)
    }

    fn warn_once(&mut self, map: &str, message: &str) {
        if !self.warned.iter().any(|m| m == map) {
            eprintln!("warning: events from `{map}` do not match their type ({message}); showing raw bytes");
            self.warned.push(map.to_string());
        }
    }
}

/// What the stream shows besides the kernel's own buffers: event types and watched maps.
pub struct Described<'a> {
    pub events: &'a [EventInfo],
    pub types: &'a BTreeMap<String, TypeLayout>,
    /// Column annotations by field name (a gadget's gadget.yaml).
    pub columns: &'a BTreeMap<String, ColumnHint>,
    pub watch: &'a Watch,
    /// The object's `bpf_printk` formats, when it prints with it.
    pub printk: Option<Formats>,
}

/// Streams until the duration passes or SIGINT/SIGTERM arrives, then detaches. Watched
/// maps are printed every `--interval`; the output maps (see `maps`) once at the end.
pub fn stream(
    loaded: &Loaded,
    described: &Described<'_>,
    opts: &RunOptions,
    out: &mut dyn Write,
) -> Result<()> {
    let (events, types, watch) = (described.events, described.types, described.watch);
    let maps: Vec<Map> = loaded
        .object
        .maps()
        .filter(|m| matches!(m.map_type(), MapType::RingBuf | MapType::PerfEventArray))
        .collect();
    let decoders: Vec<Decoder> = maps
        .iter()
        .map(|m| decoder(m, events, types, described.columns))
        .collect();
    let mut out = BufWriter::with_capacity(64 * 1024, out);
    let sink = RefCell::new(Sink {
        out: &mut out,
        output: opts.output,
        header_for: None,
        warned: Vec::new(),
        error: None,
        events: 0,
        line: Vec::with_capacity(512),
        clock: (-1, String::new()),
        last_flush: Instant::now(),
    });
    let (ring, perfs) = buffers(&maps, &decoders, &sink)?;
    let mut pipe = described.printk.clone().map(TracePipe::open).transpose()?;
    // Installed before `announce` says "Attached": a signal from then on detaches cleanly.
    let signals = StopSignals::install();
    announce(loaded.programs(), &decoders, watch, pipe.is_some(), opts);
    if opts.output == Output::Table {
        print_first_header(&sink, &decoders)?;
    }
    let interval = opts.interval.filter(|_| !watch.is_empty());
    // eunomia's `@sample` maps print on their own interval when --interval is not given.
    let sample = watch.sample_interval().filter(|_| interval.is_none());
    let deadline = opts.duration.map(|d| Instant::now() + d);
    poll_until_stopped(
        ring.as_ref(),
        &perfs,
        pipe.as_mut(),
        &sink,
        watch,
        interval.map(|i| (i, false)).or(sample.map(|s| (s, true))),
        &signals,
        deadline,
    )?;
    // Without --interval, the output maps (not a program's scratch state) end every run.
    if interval.is_none() && sink.borrow().error.is_none() && !watch.output_names().is_empty() {
        print_maps(&sink, &watch.read_output());
    }
    drop((ring, perfs));
    let mut sink = sink.into_inner();
    if sink.error.is_none() {
        let flushed = sink.flush();
        sink.finish_write(flushed);
    }
    eprintln!("Stopped after {} event(s); programs detached", sink.events);
    match sink.error {
        // The reader went away (e.g. `| head`): that is a normal way to stop.
        Some(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Some(e) => Err(Error::io(
            "write events to",
            std::path::Path::new("the output"),
            e,
        )),
        None => Ok(()),
    }
}

/// Polls the buffers (their callbacks print the events) until `deadline` passes,
/// SIGINT/SIGTERM arrives or writing fails; prints the watched maps every `interval`.
#[allow(clippy::too_many_arguments)]
fn poll_until_stopped(
    ring: Option<&RingBuffer>,
    perfs: &[PerfBuffer],
    mut pipe: Option<&mut TracePipe>,
    sink: &RefCell<Sink<'_>>,
    watch: &Watch,
    interval: Option<(Duration, bool)>,
    signals: &StopSignals,
    deadline: Option<Instant>,
) -> Result<()> {
    // (every, sampled only): `--interval` prints every map, `@sample` only its maps.
    let mut next_print = interval.map(|(i, _)| Instant::now() + i);
    while !signals.requested() && deadline.is_none_or(|d| Instant::now() < d) {
        let wait = deadline.map_or(POLL, |d| {
            d.saturating_duration_since(Instant::now()).min(POLL)
        });
        let polled = poll(ring, perfs, wait);
        if let Some(pipe) = pipe.as_deref_mut() {
            for line in pipe.read_lines() {
                if !sink.borrow_mut().printk(&line) {
                    break;
                }
            }
        }
        // The buffers are drained: what they printed goes out now.
        let flushed = sink.borrow_mut().flush();
        sink.borrow_mut().finish_write(flushed);
        // A failed write makes the callback stop the poll; that is not a poll error.
        if sink.borrow().error.is_some() {
            break;
        }
        polled?;
        if let (Some(at), Some((every, sampled))) = (next_print, interval) {
            if Instant::now() >= at {
                let data = if sampled {
                    watch.read_sampled()
                } else {
                    watch.read()
                };
                print_maps(sink, &data);
                next_print = Some(at + every);
            }
        }
    }
    Ok(())
}

fn decoder(
    map: &Map,
    events: &[EventInfo],
    types: &BTreeMap<String, TypeLayout>,
    columns: &BTreeMap<String, ColumnHint>,
) -> Decoder {
    let name = map.name().to_string_lossy().into_owned();
    let info = events.iter().find(|e| e.map == name);
    let type_name = info.map(|e| e.type_name.clone());
    let codec = type_name
        .as_ref()
        .and_then(|t| types.get(t))
        .map(|layout| EventCodec::with_columns(layout, columns));
    let table = codec
        .as_ref()
        .map_or_else(Table::raw, |c| c.table().clone());
    Decoder {
        map: name,
        type_name,
        codec,
        table,
    }
}

type Buffers<'cb> = (Option<RingBuffer<'cb>>, Vec<PerfBuffer<'cb>>);

fn buffers<'cb>(
    maps: &'cb [Map<'cb>],
    decoders: &'cb [Decoder],
    sink: &'cb RefCell<Sink<'_>>,
) -> Result<Buffers<'cb>> {
    let mut ring = RingBufferBuilder::new();
    let mut rings = 0;
    let mut perfs = Vec::new();
    for (map, decoder) in maps.iter().zip(decoders) {
        if map.map_type() == MapType::RingBuf {
            ring.add(map, move |bytes: &[u8]| {
                if sink.borrow_mut().event(decoder, bytes) {
                    0
                } else {
                    -1
                }
            })
            .map_err(|e| buffer_error(&decoder.map, &e))?;
            rings += 1;
        } else {
            let perf = PerfBufferBuilder::new(map)
                .sample_cb(move |_cpu, bytes: &[u8]| {
                    sink.borrow_mut().event(decoder, bytes);
                })
                .lost_cb(|cpu, count| eprintln!("warning: lost {count} event(s) on CPU {cpu}"))
                .build()
                .map_err(|e| buffer_error(&decoder.map, &e))?;
            perfs.push(perf);
        }
    }
    let ring = if rings > 0 {
        Some(ring.build().map_err(|e| buffer_error("ring buffers", &e))?)
    } else {
        None
    };
    Ok((ring, perfs))
}

fn buffer_error(map: &str, e: &libbpf_rs::Error) -> Error {
    Error::kernel(format!("cannot read events from `{map}`"))
        .with_source(e.to_string())
        .with_help(
            "the kernel refused to map the buffer; check the locked-memory limit (ulimit -l)",
        )
}

/// Prints maps read from the watch: text blocks for tables, one JSON line per map for JSON.
fn print_maps(sink: &RefCell<Sink<'_>>, data: &[MapData]) {
    let mut sink = sink.borrow_mut();
    // The next event table needs its header again after the map block.
    sink.header_for = None;
    let text = match sink.output {
        Output::Table => maps::render_text(data, &time_of_day()),
        Output::Json => data
            .iter()
            .map(|m| format!("{}\n", maps::json_line(m)))
            .collect(),
    };
    let result = sink
        .out
        .write_all(text.as_bytes())
        .and_then(|()| sink.out.flush());
    sink.finish_write(result);
}

/// The one status line the end-to-end tests wait for: it must start with "Attached ".
fn announce(programs: usize, decoders: &[Decoder], watch: &Watch, printk: bool, opts: &RunOptions) {
    let maps = if watch.is_empty() {
        String::new()
    } else {
        let names: Vec<String> = watch.names().iter().map(|n| format!("`{n}`")).collect();
        match opts.interval {
            Some(i) => format!(
                "; showing maps {} every {}s",
                names.join(", "),
                i.as_secs_f64()
            ),
            None => match watch.output_names().as_slice() {
                [] => String::new(),
                shown => {
                    let shown: Vec<String> = shown.iter().map(|n| format!("`{n}`")).collect();
                    format!("; showing maps {} at the end", shown.join(", "))
                }
            },
        }
    };
    let until = match opts.duration {
        Some(d) => format!("for {}s or until Ctrl-C", d.as_secs_f64()),
        None => "Ctrl-C to stop".into(),
    };
    if decoders.is_empty() && printk {
        eprintln!("Attached {programs} program(s); streaming its bpf_printk lines from trace_pipe{maps} ({until})");
    } else if decoders.is_empty() {
        eprintln!("Attached {programs} program(s); it has no ring buffer or perf event array, so no events to show{maps} ({until})");
    } else {
        let names: Vec<String> = decoders.iter().map(|d| format!("`{}`", d.map)).collect();
        eprintln!(
            "Attached {programs} program(s); streaming events from {}{maps} ({until})",
            names.join(", ")
        );
    }
}

fn print_first_header(sink: &RefCell<Sink<'_>>, decoders: &[Decoder]) -> Result<()> {
    let Some(first) = decoders.iter().find(|d| d.codec.is_some()) else {
        return Ok(());
    };
    let mut sink = sink.borrow_mut();
    let result = sink
        .header(&first.table, first.type_name.clone())
        .and_then(|()| sink.out.flush());
    sink.finish_write(result);
    Ok(())
}

fn poll(ring: Option<&RingBuffer>, perfs: &[PerfBuffer], wait: Duration) -> Result<()> {
    if ring.is_none() && perfs.is_empty() {
        std::thread::sleep(wait);
        return Ok(());
    }
    // Split the wait so every buffer gets polled within one round.
    let share = wait / (perfs.len() as u32 + u32::from(ring.is_some()));
    if let Some(ring) = ring {
        let rc = ring.poll_raw(share);
        if rc < 0 && rc != -libc::EINTR {
            return Err(poll_error(io::Error::from_raw_os_error(-rc)));
        }
    }
    for perf in perfs {
        if let Err(e) = perf.poll(share) {
            if e.kind() != libbpf_rs::ErrorKind::Interrupted {
                return Err(poll_error(io::Error::other(e.to_string())));
            }
        }
    }
    Ok(())
}

fn poll_error(e: io::Error) -> Error {
    Error::kernel("reading events failed")
        .with_source(e)
        .with_help("this is unexpected; run again, and report it if it persists")
}
