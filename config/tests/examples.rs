//! Every `examples/*.toml` and the VM tier's `tests/vm/golden/cluster.toml`
//! load, and `k8r-migration.toml` is exactly what importing
//! `examples/variables.cfg` produces.

use std::path::{Path, PathBuf};

use k8r_config::cluster::{self, Component, SizeSpec};
use k8r_config::import::import_variables_cfg;
use k8r_config::Arch;

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// The config the QEMU tier builds its golden images from (its paths are
/// relative to the work directory the harness assembles, tests/vm/README.md).
fn vm_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vm/golden/cluster.toml")
}

fn example_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .expect("examples/ exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files.push(vm_config());
    files
}

#[test]
fn every_example_loads_and_round_trips() {
    let files = example_files();
    let names: Vec<String> =
        files.iter().map(|p| p.file_name().expect("name").to_string_lossy().into_owned()).collect();
    for want in
        ["airgapped.toml", "alpine.toml", "calico-gpt.toml", "control-plane.toml", "k8r-migration.toml", "cluster.toml"]
    {
        assert!(names.iter().any(|n| n == want), "examples/{want} is missing: {names:?}");
    }
    for file in files {
        let c = cluster::load(&file).unwrap_or_else(|e| panic!("{e}"));
        let base = file.parent().expect("parent");
        let again = cluster::from_str(&c.to_toml(), base)
            .unwrap_or_else(|e| panic!("{}: canonical form refused: {e}", file.display()));
        assert_eq!(c, again, "{}", file.display());
        assert!(c.secrets_present().is_empty(), "{}: examples carry no secrets", file.display());
    }
}

#[test]
fn examples_pin_what_they_download() {
    let load = |path: &Path| cluster::load(path).unwrap_or_else(|e| panic!("{e}"));
    for (path, arch) in [
        (examples_dir().join("control-plane.toml"), Arch::Aarch64),
        (examples_dir().join("alpine.toml"), Arch::Aarch64),
        (examples_dir().join("calico-gpt.toml"), Arch::Aarch64),
        (vm_config(), Arch::X86_64),
        (vm_config(), Arch::Aarch64),
    ] {
        let c = load(&path);
        let name = path.display();
        for comp in Component::ALL {
            let r = c.resolve_component(comp, arch).unwrap_or_else(|e| panic!("{name}: {e}"));
            let is_url = matches!(r.location, cluster::Location::Url(_));
            // Unpinned with a `components.dir`: the builder takes the local
            // file and refuses to download an unpinned URL.
            let pinned = r.sha256.is_some() || r.local_candidate.is_some();
            assert!(!is_url || pinned, "{name}: {comp} is downloaded unpinned");
        }
    }
    let airgapped = load(&examples_dir().join("airgapped.toml"));
    let containerd = airgapped.resolve_component(Component::Containerd, Arch::Aarch64).expect("resolves");
    assert_eq!(containerd.file_name, "containerd-static-2.1.5-linux-arm64.tar.gz");
    assert!(containerd.local_candidate.is_some());
    assert_eq!(
        load(&examples_dir().join("calico-gpt.toml")).layout.working,
        SizeSpec::Fixed(k8r_config::Bytes(8 << 30))
    );
}

#[test]
fn migration_example_is_the_import_of_variables_cfg() {
    let cfg = std::fs::read_to_string(examples_dir().join("variables.cfg")).expect("examples/variables.cfg");
    let got = import_variables_cfg(&cfg).expect("imports");
    let want = std::fs::read_to_string(examples_dir().join("k8r-migration.toml")).expect("examples/k8r-migration.toml");
    similar_asserts::assert_eq!(got.toml, want);
    let seed = got.seed.expect("the sample has a join string");
    k8r_config::seed::Seed::parse(&seed).expect("its seed parses");
}

/// `make image` builds `control-plane.toml` from a fresh clone: a local
/// file it names must be in the repository, or the README's first command
/// fails before its download.
#[test]
fn the_readme_example_names_only_files_a_clone_has() {
    let c = cluster::load(&examples_dir().join("control-plane.toml")).unwrap_or_else(|e| panic!("{e}"));
    let local = [c.upgrade.public_key.as_ref(), c.containerd.preload_images.as_ref(), c.components.dir.as_ref()];
    for path in local.into_iter().flatten() {
        assert!(path.exists(), "examples/control-plane.toml names {}, which a clone lacks", path.display());
    }
}
