//! An echo server: one coroutine per connection, written as plain blocking
//! code with `goro::net`.
//!
//! ```sh
//! cargo run --release --example echo_server -- 127.0.0.1:7007
//! cargo run --release --example echo_client -- --addr 127.0.0.1:7007
//! ```
//!
//! Each accepted connection gets its own coroutine that reads and writes
//! back until the peer closes it. A read that finds no data parks only that
//! coroutine; the worker thread runs other connections meanwhile. The
//! listener keeps accepting through fd exhaustion (`accept` backs off and
//! retries) and a connection that fails (reset, broken pipe) ends only its
//! own coroutine.
//!
//! The serving logic lives in [`serve`] and [`handle`], so the echo client
//! (`--in-process`) and the tests (`tests/net_examples.rs`) run this same
//! code.

use std::io::{self, Read, Write};

use goro::net::{TcpListener, TcpStream};

/// Bytes read per `read` call: 16 KiB drains a busy socket in a few calls.
/// (Heap-allocated per connection; see `push_server.rs` for a server that
/// keeps idle connections small.)
const BUF_SIZE: usize = 16 << 10;

/// Echoes everything `conn` sends until it closes the connection or an
/// error (reset, broken pipe) ends it; the error is returned.
pub fn handle(mut conn: TcpStream) -> io::Result<u64> {
    conn.set_nodelay(true)?;
    let mut buf = vec![0u8; BUF_SIZE];
    let mut total = 0u64;
    loop {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        conn.write_all(&buf[..n])?;
        total += n as u64;
    }
}

/// Accepts connections forever, one coroutine per connection.
pub fn serve(listener: TcpListener) -> io::Result<()> {
    for conn in listener.incoming() {
        let conn = conn?;
        goro::go!(move || {
            // A failed connection ends only its own coroutine.
            let _ = handle(conn);
        });
    }
    Ok(())
}

fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7007".to_string());
    let listener = TcpListener::bind(addr.as_str())?;
    println!("echo server listening on {}", listener.local_addr()?);
    serve(listener)
}
