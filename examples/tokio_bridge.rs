//! Calling tokio-only async code from goro coroutines.
//!
//! Some futures need tokio's reactor (its sockets, timers, or a client
//! library built on them); `goro::block_on` cannot drive those, since it
//! has no reactor. The pattern: run a tokio runtime on a side thread, send
//! it requests over a goro channel, and let each request carry a goro
//! channel for its answer. Coroutines block (park) on plain `recv`; tokio
//! tasks use `recv_async`/`send_async`, so neither side blocks the other's
//! threads.
//!
//! Here the tokio side serves "lookups" by talking to a tokio TCP server
//! (standing in for a database or an HTTP API with an async-only client),
//! and 50 coroutines each make a few requests.
//!
//! ```text
//! cargo run --example tokio_bridge
//! ```

use std::time::Duration;

use goro::chan::{self, Receiver, Sender};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// A request for the tokio side: a key, and where to send the answer.
pub struct Lookup {
    /// What to look up.
    pub key: String,
    /// Where the answer goes.
    pub reply: Sender<std::io::Result<String>>,
}

/// The tokio side: a runtime on its own thread, serving [`Lookup`]s that
/// arrive on `requests` until every sender is gone.
pub fn start_tokio_side(requests: Receiver<Lookup>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        rt.block_on(async move {
            let backend = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = backend.local_addr().expect("local_addr");
            tokio::spawn(serve_backend(backend));
            // One task per request; each talks to the backend over tokio's
            // sockets, then answers over the request's goro channel.
            let mut tasks = tokio::task::JoinSet::new();
            while let Ok(req) = requests.recv_async().await {
                tasks.spawn(async move {
                    let answer = ask_backend(addr, &req.key).await;
                    // The coroutine may have given up: that is fine.
                    let _ = req.reply.send_async(answer).await;
                });
            }
            while tasks.join_next().await.is_some() {}
        });
    })
}

/// A toy async-only service: answers each line `key` with `value-of-key`,
/// after a short tokio sleep.
async fn serve_backend(listener: tokio::net::TcpListener) {
    while let Ok((conn, _)) = listener.accept().await {
        tokio::spawn(async move {
            let (r, mut w) = conn.into_split();
            let mut lines = BufReader::new(r).lines();
            while let Ok(Some(key)) = lines.next_line().await {
                tokio::time::sleep(Duration::from_millis(1)).await;
                if w.write_all(format!("value-of-{key}\n").as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
    }
}

async fn ask_backend(addr: std::net::SocketAddr, key: &str) -> std::io::Result<String> {
    let conn = tokio::net::TcpStream::connect(addr).await?;
    let (r, mut w) = conn.into_split();
    w.write_all(format!("{key}\n").as_bytes()).await?;
    let mut line = String::new();
    BufReader::new(r).read_line(&mut line).await?;
    Ok(line.trim_end().to_string())
}

/// The goro side: `workers` coroutines each look up `per_worker` keys
/// through the tokio side; returns every answer, in no particular order.
pub fn run(workers: usize, per_worker: usize) -> Vec<String> {
    let (requests_tx, requests_rx) = chan::bounded::<Lookup>(64);
    let tokio_side = start_tokio_side(requests_rx);
    let (answers_tx, answers_rx) = chan::unbounded::<String>();
    for w in 0..workers {
        let (requests, answers) = (requests_tx.clone(), answers_tx.clone());
        goro::go!(move || {
            for i in 0..per_worker {
                let (reply, answer) = chan::bounded(1);
                let key = format!("k{w}-{i}");
                requests
                    .send(Lookup { key, reply })
                    .expect("the tokio side is up");
                // Parks this coroutine only; a timeout guards against a
                // stuck backend.
                match answer.recv_timeout(Duration::from_secs(30)) {
                    Ok(Ok(v)) => answers.send(v).unwrap(),
                    Ok(Err(e)) => answers.send(format!("error: {e}")).unwrap(),
                    Err(e) => answers.send(format!("error: {e}")).unwrap(),
                }
            }
        });
    }
    drop((requests_tx, answers_tx));
    let all: Vec<String> = answers_rx.iter().collect();
    tokio_side.join().expect("the tokio side");
    all
}

#[allow(dead_code)]
fn main() {
    let answers = run(50, 4);
    let ok = answers
        .iter()
        .filter(|a| a.starts_with("value-of-"))
        .count();
    println!(
        "{} answers, {} ok; for example {:?}",
        answers.len(),
        ok,
        answers.first()
    );
}
