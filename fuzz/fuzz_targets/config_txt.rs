//! `config.txt` with filters and includes (`config_txt::load`). The input
//! is the first byte (board, tryboot flag) and up to three files split at
//! `SEP`: `config.txt`, `extra.txt`, `tryboot.txt`, so includes resolve.
#![no_main]

use k8r_core::bootmodel::{config_txt, Board};
use libfuzzer_sys::fuzz_target;

const SEP: &[u8] = b"\n#--8<--\n";
const NAMES: [&str; 3] = ["config.txt", "extra.txt", "tryboot.txt"];

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let board = Board::ALL[usize::from(first) % Board::ALL.len()];
    let files = k8r_fuzz::split(rest, SEP);
    let read = |name: &str| -> anyhow::Result<Option<Vec<u8>>> {
        Ok(NAMES.iter().position(|n| n.eq_ignore_ascii_case(name)).and_then(|i| files.get(i)).map(|f| f.to_vec()))
    };
    let _ = config_txt::load(&read, "config.txt", board, first & 0x80 != 0);
});
