//! Event and map value decoding: a layout (JSON, as packages carry it) and raw bytes, through
//! the reference decoder and the compiled codec.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ebpf_package::spec::TypeLayout;

fuzz_target!(|data: &[u8]| {
    // The first two bytes say how long the layout's JSON is; the rest are the event.
    if data.len() < 2 {
        return;
    }
    let n = (u16::from_le_bytes([data[0], data[1]]) as usize).min(data.len() - 2);
    let (layout, event) = data[2..].split_at(n);
    let Ok(layout) = serde_json::from_slice::<TypeLayout>(layout) else {
        return;
    };
    if let Ok(mut v) = ebpf_package::decode::decode(&layout, event) {
        ebpf_package::decode::annotate(&layout, &mut v);
        let _ = ebpf_package::decode::json_line(&v);
    }
    let _ = ebpf_package::decode::kind_name(&layout);
    let codec = ebpf_package::codec::EventCodec::new(&layout);
    let mut out = Vec::new();
    let _ = codec.write_json(event, &mut out);
    out.clear();
    let _ = codec.write_row("00:00:00", event, &mut out);
    let _ = ebpf_package::decode::raw_value(event);
});
