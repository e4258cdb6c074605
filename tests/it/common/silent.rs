//! A server that accepts connections and never answers: a registry stalled before its first
//! byte, for tests that need a run to be busy for as long as they like; and a child process
//! that a failed test does not leave running.

use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// Listening on loopback; every connection is held open, unanswered, until it is dropped.
pub struct Silent {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    held: Arc<Mutex<Vec<TcpStream>>>,
}

impl Silent {
    /// Starts one.
    pub fn start() -> Silent {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let held = Arc::new(Mutex::new(Vec::new()));
        let keep = held.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                keep.lock().unwrap().push(stream);
            }
        });
        Silent { addr, held }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.held.lock().unwrap().len()
    }
}

/// A child process killed (and reaped) when the test ends, however it ends.
pub struct Reaped(pub std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
