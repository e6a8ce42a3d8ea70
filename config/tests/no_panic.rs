//! Every parser in this crate returns an error, never panics, on mangled
//! input: thousands of deterministic mutations of valid files (truncation,
//! inserted shell and TOML metacharacters, deleted and repeated spans).

use std::path::Path;

use k8r_config::cluster;
use k8r_config::import::import_variables_cfg;
use k8r_config::node::NodeConfig;
use k8r_config::seed::Seed;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const NASTY: [&str; 24] = [
    "{", "}", "[", "]", "\"", "'", "$", "`", "\\", "\n", "#", "=", ":", "/", ".", ",", "~", "\0", "é", "[[", "://",
    "{arch}", "0", "-",
];

/// One mutation of `text`, on char boundaries.
fn mutate(text: &str, rng: &mut Rng) -> String {
    let chars: Vec<char> = text.chars().collect();
    let at = rng.below(chars.len() + 1);
    let head: String = chars[..at].iter().collect();
    let tail: String = chars[at..].iter().collect();
    match rng.below(4) {
        0 => head,
        1 => format!("{head}{}{tail}", NASTY[rng.below(NASTY.len())]),
        2 => {
            let skip = rng.below(16).min(tail.chars().count());
            format!("{head}{}", tail.chars().skip(skip).collect::<String>())
        }
        _ => {
            let span: String = tail.chars().take(rng.below(24)).collect();
            format!("{head}{span}{span}{tail}")
        }
    }
}

fn corpus() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut texts: Vec<String> = std::fs::read_dir(&dir)
        .expect("examples/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml" || x == "cfg"))
        .map(|p| std::fs::read_to_string(p).expect("read"))
        .collect();
    texts.sort();
    let migration =
        import_variables_cfg(&std::fs::read_to_string(dir.join("variables.cfg")).expect("read")).expect("imports");
    texts.push(migration.seed.expect("seed"));
    let cp = cluster::load(&dir.join("control-plane.toml")).expect("loads");
    texts.push(NodeConfig::from_cluster(&cp, k8r_config::Distro::Ubuntu).render());
    texts
}

#[test]
fn parsers_never_panic_on_mutations() {
    let mut rng = Rng(0x6b38_7221_c0ff_ee00);
    let base = Path::new("/srv/{x}");
    for text in corpus() {
        let mut current = text.clone();
        for round in 0..600 {
            // Mostly single mutations of the original, sometimes stacked ones.
            current = if round % 4 == 0 { mutate(&text, &mut rng) } else { mutate(&current, &mut rng) };
            let _ = cluster::from_str(&current, base);
            let _ = Seed::parse(&current);
            let _ = NodeConfig::parse(&current);
            let _ = import_variables_cfg(&current);
        }
    }
}
