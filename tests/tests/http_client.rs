//! `k8r_core::http` against a loopback server that fails in every way the
//! issue lists: drops mid-body (resume with Range), 5xx bursts (retries),
//! 404 (no retry), ignored or wrong Range, a file that changes between
//! requests, stalls, and bodies shorter than announced.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

use k8r_core::http::{Client, HttpError, RetryPolicy};
use k8r_tests::faultserver::{FaultServer, Faults};

fn payload() -> Vec<u8> {
    (0..3_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect()
}

fn server(faults: Faults) -> FaultServer {
    let files = BTreeMap::from([("/image.img.xz".to_string(), payload())]);
    FaultServer::start(files, faults).expect("start server")
}

fn fast() -> Client {
    Client::new(RetryPolicy {
        attempts: 4,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_millis(500),
    })
}

fn fetch(s: &FaultServer) -> Result<Vec<u8>, String> {
    let mut d = fast().open(&s.url("/image.img.xz")).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    d.read_to_end(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

#[test]
fn clean_download() {
    let s = server(Faults::default());
    assert!(fetch(&s).expect("download") == payload());
    assert_eq!(s.requests().len(), 1);
}

#[test]
fn resumes_after_dropped_connections() {
    let s = server(Faults { drop_after: Some(700_000), drop_times: 2, ..Faults::default() });
    assert!(fetch(&s).expect("download") == payload(), "stitched body must equal the file");
    let reqs = s.requests();
    assert_eq!(reqs.len(), 3, "{reqs:?}");
    assert_eq!(reqs[0].range, None);
    assert_eq!(reqs[1].range.as_deref(), Some("bytes=700000-"));
    assert_eq!(reqs[2].range.as_deref(), Some("bytes=1400000-"));
}

#[test]
fn resumes_after_a_stall() {
    let s = server(Faults { stall: Some((1_000_000, Duration::from_secs(3))), ..Faults::default() });
    assert!(fetch(&s).expect("download") == payload());
    assert_eq!(s.requests()[1].range.as_deref(), Some("bytes=1000000-"));
}

#[test]
fn retries_5xx_then_succeeds() {
    let s = server(Faults { fail_first: 2, fail_status: 503, ..Faults::default() });
    assert!(fetch(&s).expect("download") == payload());
    assert_eq!(s.requests().len(), 3);
}

#[test]
fn gives_up_after_the_policy() {
    let s = server(Faults { fail_first: 100, fail_status: 500, ..Faults::default() });
    let err = fetch(&s).expect_err("must give up");
    assert!(err.contains("giving up after 4 attempts"), "{err}");
    assert_eq!(s.requests().len(), 4);
}

#[test]
fn does_not_retry_404() {
    let s = server(Faults { always_status: Some(404), ..Faults::default() });
    match fast().open(&s.url("/image.img.xz")) {
        Err(HttpError::Status { status: 404, .. }) => {}
        other => panic!("expected a 404 error, got {other:?}"),
    }
    assert_eq!(s.requests().len(), 1);
}

#[test]
fn refuses_to_stitch_a_changed_file() {
    let s = server(Faults { drop_after: Some(500_000), change_after_first: true, ..Faults::default() });
    let err = fetch(&s).expect_err("a changed file must not be stitched");
    assert!(err.contains("changed on the server"), "{err}");
}

#[test]
fn refuses_ignored_or_wrong_ranges() {
    for (faults, want) in [
        (Faults { drop_after: Some(500_000), ignore_range: true, ..Faults::default() }, "ignored the Range"),
        (
            Faults { drop_after: Some(500_000), wrong_range_start: true, ..Faults::default() },
            "server resumed at byte 500001",
        ),
    ] {
        let s = server(faults);
        let err = fetch(&s).expect_err(want);
        assert!(err.contains(want), "{err}");
    }
}

#[test]
fn a_server_that_keeps_cutting_bodies_short_is_an_error() {
    let s = server(Faults { short_body_always: true, ..Faults::default() });
    let err = fetch(&s).expect_err("short bodies");
    assert!(err.contains("cannot resume at byte 3000000") && err.contains("shorter than it announced"), "{err}");
}

#[test]
fn get_bytes_is_bounded() {
    let s = server(Faults::default());
    let err = fast().get_bytes(&s.url("/image.img.xz"), 1000).expect_err("too large");
    assert!(err.to_string().contains("more than the 1000 bytes"), "{err}");
}
