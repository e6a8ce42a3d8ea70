//! The download cache against a loopback HTTP server: a pinned download is
//! cached and re-used without a request; a wrong digest is an error that
//! leaves nothing behind; a damaged cache file is fetched again; unpinned
//! URLs are refused before any request; parallel fetches of one file agree.

mod components_support;

use std::fs;
use std::path::Path;

use components_support::{cache, serve, sha, snapshot};
use k8r_builder::fetch::FetchError;
use k8r_core::http::HttpError;
use k8r_core::io::progress::{Counter, NoProgress};
use k8r_tests::faultserver::Faults;

const BODY: &[u8] = b"#!/bin/sh\necho kubelet stand-in\n";

/// Files in the cache's content directory (digest files and `.name`s).
fn cached_files(root: &Path) -> Vec<String> {
    let dir = root.join("downloads/sha256");
    let Ok(entries) = fs::read_dir(&dir) else { return Vec::new() };
    let mut names: Vec<_> = entries.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// Nothing but empty directories under the temporary download area.
fn tmp_is_empty(root: &Path) -> bool {
    fs::read_dir(root.join("downloads/tmp")).map(|mut d| d.next().is_none()).unwrap_or(true)
}

#[test]
fn pinned_download_is_cached_and_reused_without_a_request() {
    let server = serve(&[("/v1/kubelet", BODY)]);
    let dir = tempfile::tempdir().expect("tempdir");
    let c = cache(dir.path());
    let counter = Counter::new(0);
    let path = c.fetch(&server.url("/v1/kubelet"), Some(sha(BODY)), "kubelet", &counter).expect("fetch");
    assert_eq!(path, c.content_path(&sha(BODY)));
    assert_eq!(fs::read(&path).expect("read"), BODY);
    assert_eq!(counter.done(), BODY.len() as u64, "progress saw every byte");
    let hex = sha(BODY).to_hex();
    assert_eq!(cached_files(dir.path()), [hex.clone(), format!("{hex}.name")]);
    let name = fs::read_to_string(dir.path().join(format!("downloads/sha256/{hex}.name"))).expect("name file");
    assert!(name.contains("name: kubelet") && name.contains("/v1/kubelet"), "{name}");
    assert!(tmp_is_empty(dir.path()));
    assert_eq!(server.requests().len(), 1);

    let again = c.fetch(&server.url("/v1/kubelet"), Some(sha(BODY)), "kubelet", &NoProgress).expect("cached");
    assert_eq!(again, path);
    assert_eq!(server.requests().len(), 1, "a verified cache hit makes no request");
}

#[test]
fn wrong_digest_is_an_error_and_caches_nothing() {
    let server = serve(&[("/kubelet", BODY)]);
    let dir = tempfile::tempdir().expect("tempdir");
    let c = cache(dir.path());
    let pinned = sha(b"something else");
    let url = server.url("/kubelet");
    let err = c.fetch(&url, Some(pinned), "kubelet", &NoProgress).expect_err("mismatch");
    match &err {
        FetchError::Mismatch { what, expected, actual } => {
            assert_eq!((what.as_str(), *expected, *actual), (url.as_str(), pinned, sha(BODY)));
        }
        other => panic!("expected a mismatch, got {other:?}"),
    }
    let text = err.to_string();
    for part in [url.as_str(), &pinned.to_hex(), &sha(BODY).to_hex()] {
        assert!(text.contains(part), "{text} should name {part}");
    }
    assert!(cached_files(dir.path()).is_empty(), "nothing cached under any name: {:?}", cached_files(dir.path()));
    assert!(tmp_is_empty(dir.path()), "no temporary leftovers");
}

#[test]
fn damaged_cache_file_is_fetched_again() {
    let server = serve(&[("/kubelet", BODY)]);
    let dir = tempfile::tempdir().expect("tempdir");
    let c = cache(dir.path());
    let url = server.url("/kubelet");
    let path = c.fetch(&url, Some(sha(BODY)), "kubelet", &NoProgress).expect("first fetch");
    let mut damaged = BODY.to_vec();
    damaged[3] ^= 0x20;
    fs::write(&path, &damaged).expect("damage the cache");
    assert_eq!(c.cached(&sha(BODY)).expect("check"), None, "a damaged file is not a hit");
    let again = c.fetch(&url, Some(sha(BODY)), "kubelet", &NoProgress).expect("refetch");
    assert_eq!(again, path);
    assert_eq!(fs::read(&again).expect("read"), BODY, "good bytes renamed over the damaged ones");
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn unpinned_urls_are_refused_before_any_request() {
    let server = serve(&[("/kubelet", BODY)]);
    let dir = tempfile::tempdir().expect("tempdir");
    let err = cache(dir.path()).fetch(&server.url("/kubelet"), None, "kubelet", &NoProgress).expect_err("unpinned");
    assert!(matches!(err, FetchError::Unpinned { .. }), "{err:?}");
    assert!(err.to_string().contains("no sha256 pins it"), "{err}");
    assert!(server.requests().is_empty());
}

#[test]
fn missing_file_on_the_server_is_a_typed_http_error() {
    let server = serve(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let err = cache(dir.path()).fetch(&server.url("/nope"), Some(sha(BODY)), "nope", &NoProgress).expect_err("404");
    assert!(matches!(err, FetchError::Http(HttpError::Status { status: 404, .. })), "{err:?}");
    assert!(cached_files(dir.path()).is_empty());
    assert!(tmp_is_empty(dir.path()));
}

#[test]
fn dropped_connection_resumes_into_the_cache() {
    let big: Vec<u8> = (0..600_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let server = serve(&[("/containerd.tar.gz", &big)]);
    server.set_faults(Faults { drop_after: Some(200_000), drop_times: 1, ..Faults::default() });
    let dir = tempfile::tempdir().expect("tempdir");
    let path = cache(dir.path())
        .fetch(&server.url("/containerd.tar.gz"), Some(sha(&big)), "containerd", &NoProgress)
        .expect("resumed download");
    assert!(fs::read(path).expect("read") == big);
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[1].range.as_deref(), Some("bytes=200000-"));
}

#[test]
fn parallel_fetches_of_one_file_agree_and_leave_no_temporaries() {
    let big: Vec<u8> = (0..400_000u32).map(|i| (i.wrapping_mul(40_503) >> 8) as u8).collect();
    let server = serve(&[("/kubectl", &big)]);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = server.url("/kubectl");
    let paths: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                // One Cache value per thread, as separate builds would have.
                let c = cache(dir.path());
                let url = url.clone();
                let digest = sha(&big);
                s.spawn(move || c.fetch(&url, Some(digest), "kubectl", &NoProgress))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread").expect("fetch")).collect()
    });
    assert!(paths.windows(2).all(|w| w[0] == w[1]), "{paths:?}");
    assert!(fs::read(&paths[0]).expect("read") == big);
    assert!(tmp_is_empty(dir.path()));
    let hex = sha(&big).to_hex();
    assert_eq!(cached_files(dir.path()), [hex.clone(), format!("{hex}.name")]);
}

#[test]
fn local_files_are_verified_in_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = cache(&dir.path().join("cache"));
    let file = components_support::write(dir.path(), "kubeadm", BODY);
    let before = snapshot(dir.path());
    assert_eq!(c.local(&file, Some(sha(BODY))).expect("matches"), sha(BODY));
    assert_eq!(c.local(&file, None).expect("unpinned: digest only"), sha(BODY));
    let err = c.local(&file, Some(sha(b"other"))).expect_err("mismatch");
    assert!(matches!(&err, FetchError::Mismatch { what, .. } if what == &file.display().to_string()), "{err:?}");
    let missing = dir.path().join("absent");
    assert!(matches!(c.local(&missing, None), Err(FetchError::Missing { path }) if path == missing));
    let err = c.local(dir.path(), None).expect_err("a directory");
    assert!(err.to_string().contains("not a regular file"), "{err}");
    assert_eq!(snapshot(dir.path()), before, "verifying copies nothing anywhere");
}
