//! A TCP proxy that stalls mid-response: once a request whose text contains a given
//! marker passes through, only a few more bytes of the answer reach the client. It lets a
//! test kill a real pull while a blob is half downloaded.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct StallingProxy {
    addr: String,
    state: Arc<State>,
}

struct State {
    upstream: String,
    marker: Vec<u8>,
    pass_bytes: usize,
    armed: AtomicBool,
    seen: AtomicBool,
    passed_after: AtomicUsize,
    stalled: AtomicBool,
    stop: AtomicBool,
}

impl StallingProxy {
    /// Proxies 127.0.0.1:<new port> to `upstream`; stalls after `pass_bytes` of the answer
    /// to a request containing `marker`.
    pub fn start(upstream: &str, marker: &str, pass_bytes: usize) -> StallingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().unwrap().to_string();
        let state = Arc::new(State {
            upstream: upstream.to_string(),
            marker: marker.as_bytes().to_vec(),
            pass_bytes,
            armed: AtomicBool::new(true),
            seen: AtomicBool::new(false),
            passed_after: AtomicUsize::new(0),
            stalled: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let st = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if st.stop.load(Ordering::SeqCst) {
                    break;
                }
                let st = st.clone();
                std::thread::spawn(move || serve(client, st));
            }
        });
        StallingProxy { addr, state }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Whether a client is now stuck in the middle of the marked response.
    pub fn has_stalled(&self) -> bool {
        self.state.stalled.load(Ordering::SeqCst)
    }

    /// From now on, forward everything (new connections only).
    pub fn disarm(&self) {
        self.state.armed.store(false, Ordering::SeqCst);
        self.state.seen.store(false, Ordering::SeqCst);
    }
}

impl Drop for StallingProxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr); // wake the accept loop
    }
}

fn serve(client: TcpStream, st: Arc<State>) {
    let Ok(upstream) = TcpStream::connect(&st.upstream) else {
        return;
    };
    let (mut c_read, mut u_write) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
    let st_up = st.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n) = c_read.read(&mut buf) {
            if n == 0 {
                break;
            }
            // Marked before the request goes on: on a kept-alive connection the answer
            // can be back, and passed through whole, before a check after the write.
            let armed = st_up.armed.load(Ordering::SeqCst);
            if armed
                && buf[..n]
                    .windows(st_up.marker.len())
                    .any(|w| w == st_up.marker)
            {
                st_up.seen.store(true, Ordering::SeqCst);
            }
            if u_write.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    let (mut u_read, mut c_write) = (upstream, client);
    let mut buf = [0u8; 16 * 1024];
    while let Ok(n) = u_read.read(&mut buf) {
        if n == 0 {
            break;
        }
        let mut chunk = &buf[..n];
        if st.seen.load(Ordering::SeqCst) {
            let before = st.passed_after.fetch_add(n, Ordering::SeqCst);
            let allowed = st.pass_bytes.saturating_sub(before).min(n);
            chunk = &buf[..allowed];
            if allowed < n {
                let _ = c_write.write_all(chunk);
                st.stalled.store(true, Ordering::SeqCst);
                while !st.stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                return;
            }
        }
        if c_write.write_all(chunk).is_err() {
            break;
        }
    }
}
