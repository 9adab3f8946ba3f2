//! The hyper peer of `examples/http_server.rs`'s `/json` endpoint: hyper
//! 1's HTTP/1.1 server connection (keep-alive, pipelined responses
//! flushed together) driven by hyper-util's tokio IO adapter, a task per
//! connection, the tokio multi-thread runtime with `--workers` threads.
//! `GET /json` answers with the same status line, headers (Server,
//! Content-Type, Content-Length in that order; no Date) and body as
//! goro's, the header names in hyper's lower case (same byte count);
//! anything else is an empty 404.
//! Usage: http-hyper --port 8083 --workers 2
use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE, SERVER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const BODY: &[u8] = br#"{"message":"Hello, World!"}"#;

async fn route(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let ok = req.method() == Method::GET && req.uri().path() == "/json";
    let mut resp = Response::new(Full::new(if ok {
        Bytes::from_static(BODY)
    } else {
        Bytes::new()
    }));
    // In goro's order; hyper adds content-length after these.
    resp.headers_mut()
        .insert(SERVER, HeaderValue::from_static("hyper"));
    if ok {
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    } else {
        *resp.status_mut() = StatusCode::NOT_FOUND;
    }
    Ok(resp)
}

fn main() -> std::io::Result<()> {
    let mut port = 8083u16;
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
    let mut http = http1::Builder::new();
    // Keep-alive is hyper's default; say so. goro's server sends no Date
    // header, so neither does this one; responses to pipelined requests
    // are written together, as goro writes every answer to one read at once.
    http.keep_alive(true)
        .auto_date_header(false)
        .pipeline_flush(true);
    rt.block_on(async move {
        let l = TcpListener::bind(("127.0.0.1", port)).await?;
        println!("hyper http listening on {}", l.local_addr()?);
        loop {
            let (s, _) = l.accept().await?;
            s.set_nodelay(true)?;
            let conn = http.serve_connection(TokioIo::new(s), service_fn(route));
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
    })
}
