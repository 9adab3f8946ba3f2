//! libcurl through the `curl` crate: a C library that drives its own
//! non-blocking sockets and `poll`, unmodified. 200 concurrent transfers
//! from coroutines on two workers against an in-process HTTP server on
//! goro's sockets.

mod support;

use support::{HTTP_BODY, http_body, http_server, two_workers, within};

fn fetch(url: &str) -> Vec<u8> {
    let mut easy = curl::easy::Easy::new();
    easy.url(url).unwrap();
    let mut body = Vec::new();
    {
        let mut t = easy.transfer();
        t.write_function(|data| {
            body.extend_from_slice(data);
            Ok(data.len())
        })
        .unwrap();
        t.perform().unwrap();
    }
    assert_eq!(easy.response_code().unwrap(), 200);
    body
}

#[test]
fn curl_200_concurrent_transfers() {
    two_workers();
    curl::init();
    within("curl from coroutines", || {
        let addr = http_server();
        let hs: Vec<_> = (0..200)
            .map(|i| {
                goro_runtime::go!(move || {
                    let path = format!("/c{i}");
                    let body = fetch(&format!("http://{addr}{path}"));
                    assert_eq!(body, http_body(&path, HTTP_BODY));
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    });
}
