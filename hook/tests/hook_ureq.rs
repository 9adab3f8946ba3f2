//! `ureq`, a blocking HTTP client, unmodified, from many coroutines on two
//! workers against an HTTP server on goro's own sockets in the same
//! process (without the hook, the clients' blocking reads would take both
//! workers and the server would never answer).

mod support;

use support::{HTTP_BODY, http_body, http_server, two_workers, within};

#[test]
fn ureq_from_100_coroutines() {
    two_workers();
    within("ureq from coroutines", || {
        let addr = http_server();
        let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
        let hs: Vec<_> = (0..100)
            .map(|i| {
                let agent = agent.clone();
                goro_runtime::go!(move || {
                    for r in 0..5 {
                        let path = format!("/u{i}/{r}");
                        let mut resp = agent.get(format!("http://{addr}{path}")).call().unwrap();
                        let body = resp.body_mut().read_to_vec().unwrap();
                        assert_eq!(body.len(), HTTP_BODY);
                        assert_eq!(body, http_body(&path, HTTP_BODY));
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    });
}
