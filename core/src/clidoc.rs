//! Shell completions and man pages, generated from the clap definitions of
//! `k8r` and `k8r-node` (so they never drift from `--help`): `k8r
//! completions`/`k8r manpages`, the same for `k8r-node`, and the files the
//! builder installs into every golden root for `k8r-node`.

use std::io;
use std::path::{Path, PathBuf};

use anyhow::Context;
pub use clap_complete::Shell;

/// The arguments of a `completions` subcommand (`k8r`, `k8r-node`).
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell (e.g. `completions bash > /etc/bash_completion.d/NAME`).
    #[arg(value_name = "SHELL")]
    pub shell: Shell,
}

/// The arguments of a `manpages` subcommand (`k8r`, `k8r-node`).
#[derive(Debug, clap::Args)]
pub struct ManpagesArgs {
    /// Where to write the command's page and one per subcommand (created if missing).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// The completion script of `cmd` for `shell`.
pub fn completions(cmd: &clap::Command, shell: Shell) -> Vec<u8> {
    let mut cmd = cmd.clone();
    let name = cmd.get_name().to_string();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut out);
    out
}

/// Man pages of `cmd` in `section`: `NAME.SECTION` and one per visible
/// subcommand (`NAME-SUB.SECTION`, as git names them), as (file name, roff).
pub fn manpages(cmd: &clap::Command, section: &str) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut cmd = cmd.clone();
    cmd.build();
    let mut out = Vec::new();
    let name = cmd.get_name().to_string();
    render(&cmd, &name, section, &mut out)?;
    Ok(out)
}

fn render(cmd: &clap::Command, name: &str, section: &str, out: &mut Vec<(String, Vec<u8>)>) -> io::Result<()> {
    // After `build`, a subcommand's bin name is already `k8r flash`.
    let page = cmd.clone().name(name.to_string());
    let mut roff = Vec::new();
    clap_mangen::Man::new(page).section(section.to_string()).render(&mut roff)?;
    out.push((format!("{name}.{section}"), roff));
    // clap's own `help` subcommand gets no page (k8r's CLIs disable it anyway).
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        render(sub, &format!("{name}-{}", sub.get_name()), section, out)?;
    }
    Ok(())
}

/// Write [`manpages`] into `dir` (created); returns the paths written.
pub fn write_manpages(cmd: &clap::Command, section: &str, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    for (file, roff) in manpages(cmd, section).context("rendering the man pages")? {
        let path = dir.join(file);
        std::fs::write(&path, roff).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// Where a distribution's zsh looks for vendor completions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZshDir {
    /// Debian and Ubuntu: `/usr/share/zsh/vendor-completions`.
    VendorCompletions,
    /// Alpine and upstream zsh: `/usr/share/zsh/site-functions`.
    SiteFunctions,
}

/// The completion scripts and man pages of `cmd`, at the paths a root
/// filesystem's shells and `man` look in: (absolute path, contents).
pub fn installed_files(cmd: &clap::Command, section: &str, zsh: ZshDir) -> io::Result<Vec<(String, Vec<u8>)>> {
    let name = cmd.get_name().to_string();
    let zsh_dir = match zsh {
        ZshDir::VendorCompletions => "/usr/share/zsh/vendor-completions",
        ZshDir::SiteFunctions => "/usr/share/zsh/site-functions",
    };
    let mut out = vec![
        (format!("/usr/share/bash-completion/completions/{name}"), completions(cmd, Shell::Bash)),
        (format!("{zsh_dir}/_{name}"), completions(cmd, Shell::Zsh)),
        (format!("/usr/share/fish/vendor_completions.d/{name}.fish"), completions(cmd, Shell::Fish)),
    ];
    for (file, roff) in manpages(cmd, section)? {
        out.push((format!("/usr/share/man/man{section}/{file}"), roff));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd() -> clap::Command {
        clap::Command::new("demo")
            .about("A demo.")
            .subcommand(
                clap::Command::new("flash").about("Write an image.").arg(clap::Arg::new("image").help("The image.")),
            )
            .subcommand(clap::Command::new("secret").hide(true))
    }

    #[test]
    fn renders_every_shell_and_a_page_per_visible_subcommand() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let text = String::from_utf8(completions(&cmd(), shell)).expect("utf-8");
            assert!(text.contains("flash"), "{shell}: {text}");
        }
        let pages = manpages(&cmd(), "8").expect("render");
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["demo.8", "demo-flash.8"]);
        let flash = String::from_utf8_lossy(&pages[1].1);
        assert!(flash.contains(".TH demo-flash 8") && flash.contains("Write an image."), "{flash}");
    }

    #[test]
    fn installed_paths() {
        let files = installed_files(&cmd(), "8", ZshDir::SiteFunctions).expect("render");
        let paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/usr/share/bash-completion/completions/demo",
                "/usr/share/zsh/site-functions/_demo",
                "/usr/share/fish/vendor_completions.d/demo.fish",
                "/usr/share/man/man8/demo.8",
                "/usr/share/man/man8/demo-flash.8",
            ]
        );
    }
}
