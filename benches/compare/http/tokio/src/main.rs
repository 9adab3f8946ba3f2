//! The tokio peer of `examples/http_server.rs`'s `/json` endpoint: a task
//! per connection, keep-alive and pipelining, requests parsed with
//! httparse, the multi-thread runtime with `--workers` threads.
//! Usage: http-tokio --port 8082 --workers 2
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const BODY: &[u8] = br#"{"message":"Hello, World!"}"#;

async fn handle(mut s: TcpStream) -> std::io::Result<()> {
    s.set_nodelay(true)?;
    let mut buf = vec![0u8; 8192];
    let (mut start, mut end) = (0, 0);
    let mut out = Vec::with_capacity(8192);
    loop {
        if end == buf.len() {
            if start > 0 {
                buf.copy_within(start..end, 0);
                end -= start;
                start = 0;
            } else if buf.len() >= 1 << 20 {
                return Ok(());
            } else {
                buf.resize(buf.len() * 2, 0);
            }
        }
        let n = s.read(&mut buf[end..]).await?;
        if n == 0 {
            return Ok(());
        }
        end += n;
        let mut close = false;
        while start < end {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&buf[start..end]) {
                Ok(httparse::Status::Complete(len)) => {
                    let ok = req.method == Some("GET") && req.path == Some("/json");
                    close = req.headers.iter().any(|h| {
                        h.name.eq_ignore_ascii_case("connection") && h.value.eq_ignore_ascii_case(b"close")
                    });
                    let (status, body): (&str, &[u8]) = if ok { ("200 OK", BODY) } else { ("404 Not Found", b"") };
                    out.extend_from_slice(
                        format!(
                            "HTTP/1.1 {status}\r\nServer: tokio\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                            body.len()
                        )
                        .as_bytes(),
                    );
                    out.extend_from_slice(body);
                    start += len;
                }
                Ok(httparse::Status::Partial) => break,
                Err(_) => return Ok(()),
            }
        }
        if start == end {
            start = 0;
            end = 0;
        }
        s.write_all(&out).await?;
        out.clear();
        if close {
            return Ok(());
        }
    }
}

fn main() -> std::io::Result<()> {
    let mut port = 8082u16;
    let mut workers = 2usize;
    let mut it = std::env::args().skip(1);
    while let Some(f) = it.next() {
        let v = it.next().expect("a value");
        match f.as_str() {
            "--port" => port = v.parse().expect("port"),
            "--workers" => workers = v.parse().expect("workers"),
            _ => panic!("unknown option {f}"),
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let l = TcpListener::bind(("127.0.0.1", port)).await?;
        println!("tokio http listening on {}", l.local_addr()?);
        loop {
            let (s, _) = l.accept().await?;
            tokio::spawn(async move {
                let _ = handle(s).await;
            });
        }
    })
}
