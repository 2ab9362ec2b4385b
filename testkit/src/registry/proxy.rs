//! A throttling TCP proxy that counts what clients send: push tests put it in front of the
//! registry to stop it mid-upload, and the push bench to measure a re-push's bytes.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Result;

/// A TCP proxy in front of a server that can slow the client's upload down, so a test can stop
/// the server while a transfer is surely in flight. Counts the bytes clients send.
pub struct SlowProxy {
    port: u16,
    sent: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl SlowProxy {
    /// Forwards `127.0.0.1:PORT` to `upstream`, client-to-server at most `bytes_per_sec`.
    pub fn start(upstream: SocketAddr, bytes_per_sec: u64) -> Result<SlowProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let sent = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (sent2, stop2) = (sent.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue; // dropping `client` closes it: the caller sees a reset
                };
                let sent = sent2.clone();
                let (c2, s2) = (client.try_clone(), server.try_clone());
                if let (Ok(c2), Ok(s2)) = (c2, s2) {
                    std::thread::spawn(move || pipe(c2, s2, Some((bytes_per_sec, sent))));
                    std::thread::spawn(move || pipe(server, client, None));
                }
            }
        });
        Ok(SlowProxy { port, sent, stop })
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Bytes clients sent through the proxy so far.
    pub fn bytes_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

impl Drop for SlowProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, limit: Option<(u64, Arc<AtomicU64>)>) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        if let Some((rate, sent)) = &limit {
            sent.fetch_add(n as u64, Ordering::Relaxed);
            std::thread::sleep(Duration::from_secs_f64(n as f64 / *rate as f64));
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}
