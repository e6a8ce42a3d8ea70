//! Shell completions and man pages from the clap definitions: `k8r
//! completions`, `k8r manpages`, and the k8r-node files the builder puts
//! into every golden root. bash checks the scripts' syntax, groff renders
//! the pages without warnings.

use std::process::Command;

fn k8r(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_k8r")).args(args).output().expect("run k8r");
    assert!(out.status.success(), "k8r {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

fn bash_syntax_ok(script: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("completion.bash");
    std::fs::write(&path, script).expect("write");
    let out = Command::new("bash").arg("-n").arg(&path).output().expect("bash");
    assert!(out.status.success(), "bash -n: {}", String::from_utf8_lossy(&out.stderr));
}

/// groff renders the page with no warnings (`-ww` turns all on).
fn groff_clean(page: &[u8], name: &str) {
    use std::io::Write;
    let mut child = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("groff");
    child.stdin.take().expect("stdin").write_all(page).expect("write");
    let out = child.wait_with_output().expect("groff");
    assert!(out.status.success() && out.stderr.is_empty(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn k8r_completions_for_every_shell() {
    let bash = k8r(&["completions", "bash"]);
    assert!(bash.contains("flash") && bash.contains("serve") && bash.contains("--no-bmap"), "{bash}");
    bash_syntax_ok(&bash);
    assert!(k8r(&["completions", "zsh"]).starts_with("#compdef k8r"));
    assert!(k8r(&["completions", "fish"]).contains("complete -c k8r"));
    let out = Command::new(env!("CARGO_BIN_EXE_k8r")).args(["completions", "tcsh"]).output().expect("run");
    assert!(!out.status.success(), "an unknown shell is refused");
}

#[test]
fn k8r_manpages_render() {
    let dir = tempfile::tempdir().expect("tempdir");
    let listed = k8r(&["manpages", dir.path().to_str().expect("utf-8")]);
    for page in ["k8r.1", "k8r-flash.1", "k8r-serve.1", "k8r-config-check.1"] {
        let path = dir.path().join(page);
        assert!(listed.contains(&path.display().to_string()), "{page} listed: {listed}");
        let roff = std::fs::read(&path).expect("page");
        groff_clean(&roff, page);
    }
    let flash = std::fs::read_to_string(dir.path().join("k8r-flash.1")).expect("page");
    assert!(flash.contains("\\-\\-force") && flash.contains("k8r flash"), "{flash}");
}

#[test]
fn the_golden_root_gets_k8r_node_completions_and_man_pages() {
    for (distro, zsh) in [
        (k8r_config::Distro::Ubuntu, "/usr/share/zsh/vendor-completions/_k8r-node"),
        (k8r_config::Distro::Alpine, "/usr/share/zsh/site-functions/_k8r-node"),
    ] {
        let files = k8r_builder::golden::root::node_docs(distro).expect("docs");
        let get = |p: &str| files.iter().find(|(path, _)| path == p).map(|(_, c)| c.clone());
        let bash =
            String::from_utf8(get("/usr/share/bash-completion/completions/k8r-node").expect("bash")).expect("utf-8");
        assert!(bash.contains("upgrade") && bash.contains("reinstall"), "{bash}");
        bash_syntax_ok(&bash);
        assert!(get(zsh).is_some(), "{distro:?}: {zsh}");
        assert!(get("/usr/share/fish/vendor_completions.d/k8r-node.fish").is_some());
        let main = get("/usr/share/man/man8/k8r-node.8").expect("k8r-node.8");
        groff_clean(&main, "k8r-node.8");
        groff_clean(&get("/usr/share/man/man8/k8r-node-upgrade.8").expect("upgrade page"), "k8r-node-upgrade.8");
    }
}
