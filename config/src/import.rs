//! Conversion of a k8r `variables.cfg` into a commented `cluster.toml`.
//!
//! `variables.cfg` is a bash fragment. It is parsed, never executed: only
//! `KEY=value` lines (optionally `export`ed; values bare, `"double"` or
//! `'single'` quoted, with `\` line continuations) and comments are read.
//! Anything that would make bash run or expand something — `$(…)`,
//! backticks, `$VAR`, `~`, `;`, redirections, other commands — is refused
//! with its line number, because its value cannot be known without running it.
//!
//! Decisions, in the order a k8r user meets them:
//! * `K8S_VERSION=1.31` (minor only) is an error: k8r pins every binary by
//!   version and sha256, so the patch release must be chosen by a person.
//! * `TOKEN_TTL=0` or unset (k8r's default, a never-expiring token) becomes
//!   `token-ttl = "24h"` with a warning: tokens are now per node and short-lived.
//! * `KUBEADM_JOIN_STRING` is a secret: it never goes into `cluster.toml`;
//!   it comes back as a separate worker (or control-plane) `seed.toml` text.
//! * Binaries come from `components/` (k8r installed them from apt): the
//!   generated file loads as is, and pinning them by sha256 is a review item.
//! * Unknown variables are ignored with a warning naming the line.
//!
//! Pure: text in, text out. The generated TOML is checked with
//! [`crate::cluster::from_str`] before it is returned.

use std::collections::BTreeMap;
use std::path::Path;

use crate::cluster::kube::{self, BootstrapToken, CaCertHash, CertificateKey, Version};
use crate::cluster::login::PasswordHash;
use crate::cluster::net::{self, Endpoint, HttpUrl};
use crate::cluster::{self, Component, ConfigError};
use crate::seed::{NodeRole, Seed, SeedJoin};

/// What an import produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// The commented `cluster.toml`.
    pub toml: String,
    /// Things the user must know or review, one sentence each.
    pub warnings: Vec<String>,
    /// A `seed.toml` carrying `KUBEADM_JOIN_STRING`'s credentials, if it had
    /// usable ones (a secret: never write it into an image).
    pub seed: Option<String>,
}

/// Why a `variables.cfg` could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A line is not a plain assignment, or uses shell features that would
    /// have to be executed.
    #[error("variables.cfg line {line}: {message}")]
    Syntax {
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A setting's value cannot be carried over.
    #[error("variables.cfg line {line}: {key}={value:?} {reason}")]
    Value {
        /// 1-based line of the assignment.
        line: usize,
        /// The variable.
        key: String,
        /// Its value.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// A required setting is absent or empty.
    #[error("variables.cfg: {key} is not set; {reason}")]
    Missing {
        /// The variable.
        key: String,
        /// What it is for.
        reason: String,
    },
    /// The `password_hash` file does not hold a crypt(3) hash.
    #[error("password_hash: {shown} {reason}")]
    PasswordHash {
        /// The content, redacted.
        shown: String,
        /// Why it was refused.
        reason: String,
    },
    /// The generated `cluster.toml` did not validate (a bug in the import).
    #[error("the generated cluster.toml does not load")]
    Generated(#[source] ConfigError),
}

/// The variables k8r reads.
const KNOWN: [&str; 10] = [
    "IMAGE",
    "K8S_VERSION",
    "CONTROL_PLANE_ENDPOINT",
    "TOKEN_TTL",
    "POD_NETWORK_CIDR",
    "CNI_TYPE",
    "CALICO_VERSION",
    "KUBEADM_JOIN_STRING",
    "HTTP_IMAGE_URL",
    "INSECURE_REGISTRY",
];

/// k8r's defaults for unset variables (`tasks/bootstrap_master.sh`).
const K8R_POD_NETWORK_CIDR: &str = "172.30.0.0/16";
const K8R_CNI: &str = "calico";
const K8R_CALICO_VERSION: &str = "3.25.1";

/// Convert `text` (a `variables.cfg`).
pub fn import_variables_cfg(text: &str) -> Result<Import, ImportError> {
    import_with_password_hash(text, None)
}

/// Convert `text`, also carrying over the contents of k8r's `password_hash`
/// file when the user has one.
pub fn import_with_password_hash(text: &str, password_hash: Option<&str>) -> Result<Import, ImportError> {
    let assignments = parse_assignments(text)?;
    let mut warnings = Vec::new();
    let vars = collect(assignments, &mut warnings);
    let settings = Settings::from_vars(&vars, password_hash, &mut warnings)?;
    let toml = render(&settings, false);
    let config = check_generated(&settings)?;
    // The login warning is already given above, with the bash k8r's default password.
    warnings.extend(config.warnings().into_iter().filter(|w| !w.starts_with("login ")));
    let seed = settings.join.as_ref().and_then(|j| join_seed(j, &mut warnings));
    Ok(Import { toml, warnings, seed })
}

// ---- bash subset ---------------------------------------------------------

/// One `KEY=value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Assignment {
    line: usize,
    key: String,
    value: String,
}

/// A cursor over the text that counts lines.
struct Lexer {
    chars: Vec<char>,
    pos: usize,
    line: usize,
}

impl Lexer {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek2(&self) -> Option<char> {
        self.chars.get(self.pos + 1).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn skip_while(&mut self, f: impl Fn(char) -> bool) {
        while self.peek().is_some_and(&f) {
            self.bump();
        }
    }

    fn syntax(&self, message: impl Into<String>) -> ImportError {
        ImportError::Syntax { line: self.line, message: message.into() }
    }
}

fn parse_assignments(text: &str) -> Result<Vec<Assignment>, ImportError> {
    // Editors on Windows may prepend a byte-order mark; bash would choke on it, we skip it.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lx = Lexer { chars: text.chars().collect(), pos: 0, line: 1 };
    let mut out = Vec::new();
    loop {
        lx.skip_while(|c| c == ' ' || c == '\t' || c == '\n' || c == '\r');
        match lx.peek() {
            None => return Ok(out),
            Some('#') => {
                lx.skip_while(|c| c != '\n');
                continue;
            }
            Some(_) => {}
        }
        let line = lx.line;
        let mut name = read_name(&mut lx);
        if name == "export" && lx.peek().is_some_and(|c| c == ' ' || c == '\t') {
            lx.skip_while(|c| c == ' ' || c == '\t');
            name = read_name(&mut lx);
        }
        let is_name = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
        if !is_name || lx.peek() != Some('=') {
            let shown: String =
                lx.chars[lx.pos.saturating_sub(name.len())..].iter().take_while(|c| **c != '\n').take(40).collect();
            return Err(lx.syntax(format!(
                "{shown:?} is not a KEY=value assignment; import reads assignments only and never runs shell code"
            )));
        }
        lx.bump();
        if lx.peek() == Some('(') {
            return Err(lx.syntax(format!("{name}=(…) is a bash array; k8r settings are single values")));
        }
        let value = read_value(&mut lx, &name)?;
        lx.skip_while(|c| c == ' ' || c == '\t' || c == '\r');
        match lx.peek() {
            None | Some('\n') => {}
            Some('#') => lx.skip_while(|c| c != '\n'),
            Some(';') => return Err(lx.syntax(format!("';' after {name}: put one assignment per line"))),
            Some(_) => {
                return Err(lx.syntax(format!(
                    "unexpected text after the value of {name} (quote values that contain spaces; \
                     `KEY=value command` would run a command)"
                )))
            }
        }
        out.push(Assignment { line, key: name, value });
    }
}

fn read_name(lx: &mut Lexer) -> String {
    let mut name = String::new();
    while let Some(c) = lx.peek().filter(|c| c.is_ascii_alphanumeric() || *c == '_') {
        name.push(c);
        lx.bump();
    }
    name
}

/// One shell word: bare, quoted and escaped pieces concatenated.
fn read_value(lx: &mut Lexer, name: &str) -> Result<String, ImportError> {
    let mut out = String::new();
    let start = lx.line;
    loop {
        match lx.peek() {
            None | Some(' ' | '\t' | '\n' | '\r' | ';' | '&' | '|' | '<' | '>' | '(' | ')') => return Ok(out),
            Some('\'') => {
                lx.bump();
                loop {
                    match lx.bump() {
                        None => {
                            return Err(ImportError::Syntax {
                                line: start,
                                message: format!("{name}: unterminated '…' quote"),
                            })
                        }
                        Some('\'') => break,
                        Some(c) => out.push(c),
                    }
                }
            }
            Some('"') => {
                lx.bump();
                read_double_quoted(lx, name, start, &mut out)?;
            }
            Some('\\') => {
                lx.bump();
                match lx.bump() {
                    None => out.push('\\'),
                    Some('\n') => {}
                    Some(c) => out.push(c),
                }
            }
            Some('$') => {
                check_dollar(lx, name)?;
                lx.bump();
                out.push('$');
            }
            Some('`') => {
                return Err(lx.syntax(format!(
                    "{name} uses `…` command substitution; import never runs commands: write the literal value"
                )))
            }
            Some('~') if out.is_empty() => {
                return Err(lx.syntax(format!("{name} starts with ~, which bash would expand; write the full path")));
            }
            Some(c) => {
                lx.bump();
                out.push(c);
            }
        }
    }
}

fn read_double_quoted(lx: &mut Lexer, name: &str, start: usize, out: &mut String) -> Result<(), ImportError> {
    loop {
        match lx.peek() {
            None => {
                return Err(ImportError::Syntax { line: start, message: format!("{name}: unterminated \"…\" quote") })
            }
            Some('"') => {
                lx.bump();
                return Ok(());
            }
            Some('\\') => {
                lx.bump();
                match lx.peek() {
                    Some(c @ ('$' | '`' | '"' | '\\')) => {
                        lx.bump();
                        out.push(c);
                    }
                    // A backslash-newline inside double quotes is a line continuation.
                    Some('\n') => {
                        lx.bump();
                    }
                    _ => out.push('\\'),
                }
            }
            Some('$') => {
                check_dollar(lx, name)?;
                lx.bump();
                out.push('$');
            }
            Some('`') => {
                return Err(lx.syntax(format!(
                    "{name} uses `…` command substitution; import never runs commands: write the literal value"
                )))
            }
            Some(c) => {
                lx.bump();
                out.push(c);
            }
        }
    }
}

/// A `$` is literal only when bash would not expand it.
fn check_dollar(lx: &Lexer, name: &str) -> Result<(), ImportError> {
    match lx.peek2() {
        Some('(') => Err(lx.syntax(format!(
            "{name} uses $(…) command substitution; import never runs commands: write the literal value"
        ))),
        Some(c) if c.is_ascii_alphanumeric() || "_{@*#?$!-".contains(c) => Err(lx.syntax(format!(
            "{name} uses ${c}… variable expansion; import does not evaluate bash: write the literal value"
        ))),
        _ => Ok(()),
    }
}

/// The last assignment of each variable wins, as in bash; empty means unset.
fn collect(assignments: Vec<Assignment>, warnings: &mut Vec<String>) -> BTreeMap<String, Assignment> {
    let mut vars: BTreeMap<String, Assignment> = BTreeMap::new();
    for a in assignments {
        if !KNOWN.contains(&a.key.as_str()) {
            warnings.push(format!("line {}: {} is not a k8r setting; ignored", a.line, a.key));
            continue;
        }
        if let Some(prev) = vars.get(&a.key) {
            warnings.push(format!(
                "line {}: {} is set again; the value from line {} is ignored, as in bash",
                a.line, a.key, prev.line
            ));
        }
        vars.insert(a.key.clone(), a);
    }
    vars.retain(|_, a| !a.value.is_empty());
    vars
}

// ---- settings ------------------------------------------------------------

/// A value and the line it came from.
#[derive(Debug, Clone)]
struct Sourced {
    line: usize,
    value: String,
}

/// What the generated `cluster.toml` says, with provenance for comments.
#[derive(Debug, Clone)]
struct Settings {
    image: Sourced,
    image_is_url: bool,
    k8s_version: Version,
    k8s_line: usize,
    endpoint: Option<Sourced>,
    token_ttl: Option<Sourced>,
    pod_cidr: Option<Sourced>,
    cni: Option<Sourced>,
    cni_kind: String,
    calico_version: Option<Sourced>,
    http_url: Option<(Sourced, String)>,
    registries: Option<(Sourced, Vec<String>)>,
    password_hash: Option<String>,
    join: Option<Sourced>,
}

fn value_error(a: &Assignment, reason: impl Into<String>) -> ImportError {
    ImportError::Value { line: a.line, key: a.key.clone(), value: a.value.clone(), reason: reason.into() }
}

fn sourced(a: &Assignment) -> Sourced {
    Sourced { line: a.line, value: a.value.clone() }
}

impl Settings {
    /// Check every variable on its own (so errors carry its line) and
    /// gather what the TOML will say.
    fn from_vars(
        vars: &BTreeMap<String, Assignment>,
        password_hash: Option<&str>,
        warnings: &mut Vec<String>,
    ) -> Result<Settings, ImportError> {
        let get = |k: &str| vars.get(k);
        let image = required(get("IMAGE"), "IMAGE", "it names the vendor image every node starts from")?;
        let image_is_url = check_image(image, warnings)?;
        let k8s = required(get("K8S_VERSION"), "K8S_VERSION", "it names the Kubernetes release, e.g. 1.33.6")?;
        let k8s_version = kubernetes_version(k8s)?;
        let endpoint = get("CONTROL_PLANE_ENDPOINT");
        if let Some(e) = endpoint {
            e.value.parse::<Endpoint>().map_err(|r| value_error(e, r))?;
        }
        let token_ttl = token_ttl(get("TOKEN_TTL"), warnings)?;
        let pod_cidr = get("POD_NETWORK_CIDR");
        if let Some(p) = pod_cidr {
            net::parse_cidr(&p.value).map_err(|r| value_error(p, r))?;
        }
        let cni = get("CNI_TYPE");
        let cni_kind = cni_kind(cni)?;
        let calico_version = get("CALICO_VERSION");
        if let Some(c) = calico_version {
            c.value.parse::<Version>().map_err(|r| value_error(c, r))?;
            if cni_kind != "calico" {
                warnings.push(format!("line {}: CALICO_VERSION is ignored because CNI_TYPE is {cni_kind}", c.line));
            }
        }
        let http_url = get("HTTP_IMAGE_URL").map(|h| http_prefix(h, warnings)).transpose()?;
        let registries = get("INSECURE_REGISTRY").map(registries).transpose()?;
        let password_hash = password_hash_file(password_hash, warnings)?;
        Ok(Settings {
            image: sourced(image),
            image_is_url,
            k8s_version,
            k8s_line: k8s.line,
            endpoint: endpoint.map(sourced),
            token_ttl,
            pod_cidr: pod_cidr.map(sourced),
            cni: cni.map(sourced),
            cni_kind,
            calico_version: calico_version.map(sourced),
            http_url,
            registries,
            password_hash,
            join: get("KUBEADM_JOIN_STRING").map(sourced),
        })
    }
}

fn required<'a>(a: Option<&'a Assignment>, key: &str, reason: &str) -> Result<&'a Assignment, ImportError> {
    a.ok_or_else(|| ImportError::Missing { key: key.to_string(), reason: reason.to_string() })
}

/// Whether IMAGE is a URL (which then needs a digest the user must add).
fn check_image(image: &Assignment, warnings: &mut Vec<String>) -> Result<bool, ImportError> {
    if !image.value.contains("://") {
        return Ok(false);
    }
    image.value.parse::<HttpUrl>().map_err(|r| value_error(image, r))?;
    warnings.push(format!(
        "line {}: IMAGE is a URL; fill in vendor.sha256 from the vendor's SHA256SUMS before building",
        image.line
    ));
    Ok(true)
}

/// The bash k8r took `1.31` too (apt picked a patch); k8r pins exact releases.
fn kubernetes_version(a: &Assignment) -> Result<Version, ImportError> {
    a.value.parse::<Version>().map_err(|r| {
        if r.contains("minor release only") {
            value_error(
                a,
                "names a minor release only; k8r pins every binary by version and sha256, so choose the patch \
                 release (e.g. 1.31.4; see https://kubernetes.io/releases/)",
            )
        } else {
            value_error(a, r)
        }
    })
}

/// `None` means the default 24 h: TOKEN_TTL was unset or 0 (never expires).
fn token_ttl(a: Option<&Assignment>, warnings: &mut Vec<String>) -> Result<Option<Sourced>, ImportError> {
    let Some(t) = a else {
        warnings.push(
            "TOKEN_TTL is unset, which in the bash k8r meant tokens never expire; token-ttl = \"24h\" is used instead"
                .to_string(),
        );
        return Ok(None);
    };
    let d = kube::parse_go_duration(&t.value).map_err(|r| value_error(t, r))?;
    if !d.is_zero() {
        return Ok(Some(sourced(t)));
    }
    warnings.push(format!(
        "line {}: TOKEN_TTL=0 (never expires) became token-ttl = \"24h\": join tokens are now created per node and must expire",
        t.line
    ));
    Ok(None)
}

fn cni_kind(a: Option<&Assignment>) -> Result<String, ImportError> {
    let Some(a) = a else {
        return Ok(K8R_CNI.to_string());
    };
    match a.value.as_str() {
        "calico" | "flannel" => Ok(a.value.clone()),
        "weave" => Err(value_error(
            a,
            "is not supported: Weave Net is no longer maintained (the bash k8r's docs call it broken); use calico or flannel",
        )),
        _ => Err(value_error(a, "is not calico or flannel")),
    }
}

/// The content of the bash k8r's `password_hash` file, checked.
fn password_hash_file(text: Option<&str>, warnings: &mut Vec<String>) -> Result<Option<String>, ImportError> {
    let Some(hash) = text.map(str::trim).filter(|h| !h.is_empty()) else {
        warnings.push(
            "no password_hash given: the bash k8r then set the password \"ubuntu\"; k8r sets no default password, \
             so add login.ssh-authorized-keys or login.password-hash (or keys in each seed)"
                .to_string(),
        );
        return Ok(None);
    };
    hash.parse::<PasswordHash>()
        .map(|_| Some(hash.to_string()))
        .map_err(|reason| ImportError::PasswordHash { shown: crate::cluster::redacted(hash), reason })
}

/// k8r accepted the full `…/image.img.xz` URL as well as the directory.
fn http_prefix(a: &Assignment, warnings: &mut Vec<String>) -> Result<(Sourced, String), ImportError> {
    let url: HttpUrl = a.value.parse().map_err(|r| value_error(a, r))?;
    let prefix = match url.file_name() {
        Some(name @ ("image.img.xz" | "boot.tar.xz" | "image.img" | "boot.img")) => {
            warnings.push(format!(
                "line {}: HTTP_IMAGE_URL names {name}; its directory is used as upgrade.http-url",
                a.line
            ));
            url.directory().to_string()
        }
        Some(name) if name.contains('.') => {
            return Err(value_error(a, "names a file; give the directory image.img.xz and boot.tar.xz are in"))
        }
        Some(_) => format!("{url}/"),
        None => url.to_string(),
    };
    Ok((sourced(a), prefix))
}

/// k8r took one registry; accept a comma- or space-separated list and
/// drop an `http://` scheme, which containerd's insecure list does not take.
fn registries(a: &Assignment) -> Result<(Sourced, Vec<String>), ImportError> {
    let mut out = Vec::new();
    for item in a.value.split([',', ' ']).filter(|s| !s.is_empty()) {
        let item = item.strip_prefix("http://").unwrap_or(item).trim_end_matches('/');
        let ep: Endpoint = item.parse().map_err(|r| value_error(a, r))?;
        out.push(ep.to_string());
    }
    Ok((sourced(a), out))
}

// ---- rendering -----------------------------------------------------------

/// A TOML string literal.
fn lit(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Versions for the binaries k8r took from apt; review items in the output.
fn runtime_versions(k8s: &Version) -> [(Component, String); 4] {
    let containerd = if k8s.minor >= 30 { "2.1.5" } else { "1.7.29" };
    [
        (Component::Crictl, format!("{}.{}.0", k8s.major, k8s.minor)),
        (Component::Containerd, containerd.to_string()),
        (Component::Runc, "1.3.3".to_string()),
        (Component::CniPlugins, "1.7.1".to_string()),
    ]
}

fn cni_manifest_hint(kind: &str, version: &str) -> (String, String) {
    match kind {
        "flannel" => (
            format!("cni/kube-flannel-{version}.yml"),
            format!("https://github.com/flannel-io/flannel/releases/download/v{version}/kube-flannel.yml"),
        ),
        _ => (
            format!("cni/calico-{version}.yaml"),
            format!("https://raw.githubusercontent.com/projectcalico/calico/v{version}/manifests/calico.yaml"),
        ),
    }
}

/// The flannel release written when k8r applied flannel's unversioned manifest.
const FLANNEL_VERSION: &str = "0.26.1";

/// Lines of the generated file.
#[derive(Default)]
struct Out(String);

impl Out {
    fn line(&mut self, text: impl AsRef<str>) {
        self.0.push_str(text.as_ref());
        self.0.push('\n');
    }

    /// A `# VAR (line N)` provenance comment, or `unset` when the variable was.
    fn origin(&mut self, var: &str, src: Option<&Sourced>, unset: &str) {
        match src {
            Some(s) => self.line(format!("# {var} (line {})", s.line)),
            None => self.line(format!("# {var} was unset: {unset}")),
        }
    }
}

/// The commented `cluster.toml`. `sha_placeholder` uncomments a dummy
/// vendor digest so a URL image can be validated.
fn render(s: &Settings, sha_placeholder: bool) -> String {
    let mut o = Out::default();
    o.line("# cluster.toml converted by `k8r import` from a k8r variables.cfg.");
    o.line("# Comments name the variables.cfg line each value came from; lines marked");
    o.line("# REVIEW need a decision before the first build. Reference: examples/README.md.");
    render_vendor(&mut o, s, sha_placeholder);
    render_kubernetes(&mut o, s);
    render_cni(&mut o, s);
    render_containerd_upgrade(&mut o, s);
    render_login(&mut o, s);
    render_components(&mut o, s);
    if let Some(j) = &s.join {
        o.line("");
        o.line(format!("# KUBEADM_JOIN_STRING (line {}) is a join secret and is not copied here: one", j.line));
        o.line("# golden image now serves every node. Give each node its own with `k8r seed`.");
    }
    o.0
}

fn render_vendor(o: &mut Out, s: &Settings, sha_placeholder: bool) {
    o.line("");
    o.line("[vendor]");
    o.line(format!("# IMAGE (line {}). Relative paths are relative to this file.", s.image.line));
    o.line(format!("image = {}", lit(&s.image.value)));
    if !s.image_is_url {
        o.line("# Optional: pin the image; the build then checks it.");
        o.line("# sha256 = \"\"");
        return;
    }
    o.line("# REVIEW: required for a URL: the image's sha256 from the vendor's SHA256SUMS.");
    if sha_placeholder {
        o.line(format!("sha256 = {}", lit(&"0".repeat(64))));
    } else {
        o.line("# sha256 = \"\"");
    }
}

fn render_kubernetes(o: &mut Out, s: &Settings) {
    o.line("");
    o.line("[kubernetes]");
    o.line(format!("# K8S_VERSION (line {})", s.k8s_line));
    o.line(format!("version = {}", lit(&s.k8s_version.to_string())));
    if let Some(e) = &s.endpoint {
        o.line(format!("# CONTROL_PLANE_ENDPOINT (line {})", e.line));
        o.line(format!("control-plane-endpoint = {}", lit(&e.value)));
    }
    o.origin("POD_NETWORK_CIDR", s.pod_cidr.as_ref(), "the bash k8r's default.");
    o.line(format!("pod-network-cidr = {}", lit(s.pod_cidr.as_ref().map_or(K8R_POD_NETWORK_CIDR, |p| &p.value))));
    o.line("# kubeadm's default service network, which the bash k8r used too.");
    o.line(format!("service-cidr = {}", lit("10.96.0.0/12")));
    match &s.token_ttl {
        Some(t) => {
            o.line(format!("# TOKEN_TTL (line {})", t.line));
            o.line(format!("token-ttl = {}", lit(&t.value)));
        }
        None => {
            o.line("# TOKEN_TTL was 0 or unset (never expires). Join tokens are now made per node");
            o.line("# (`k8r seed`) and must expire.");
            o.line("token-ttl = \"24h\"");
        }
    }
}

fn render_cni(o: &mut Out, s: &Settings) {
    o.line("");
    o.line("[kubernetes.cni]");
    o.origin("CNI_TYPE", s.cni.as_ref(), "the bash k8r's default.");
    o.line(format!("type = {}", lit(&s.cni_kind)));
    let version = if s.cni_kind == "calico" {
        o.origin("CALICO_VERSION", s.calico_version.as_ref(), "the bash k8r's default.");
        s.calico_version.as_ref().map_or(K8R_CALICO_VERSION.to_string(), |c| c.value.clone())
    } else {
        o.line("# The bash k8r applied flannel's unversioned manifest. REVIEW: the release to pin.");
        FLANNEL_VERSION.to_string()
    };
    o.line(format!("version = {}", lit(&version)));
    let (path, url) = cni_manifest_hint(&s.cni_kind, &version);
    o.line("# REVIEW: the bash k8r applied the manifest from the internet on first boot;");
    o.line("# k8r bakes it into the image. Download");
    o.line(format!("#   {url}"));
    o.line("# to the path below, or use manifest = { url = \"…\", sha256 = \"…\" }.");
    o.line(format!("manifest = {{ path = {} }}", lit(&path)));
}

fn render_containerd_upgrade(o: &mut Out, s: &Settings) {
    if let Some((r, list)) = &s.registries {
        o.line("");
        o.line("[containerd]");
        o.line(format!("# INSECURE_REGISTRY (line {})", r.line));
        let items: Vec<String> = list.iter().map(|x| lit(x)).collect();
        o.line(format!("insecure-registries = [{}]", items.join(", ")));
    }
    if let Some((h, prefix)) = &s.http_url {
        o.line("");
        o.line("[upgrade]");
        o.line(format!("# HTTP_IMAGE_URL (line {}): the directory holding image.img.xz and boot.tar.xz.", h.line));
        o.line(format!("http-url = {}", lit(prefix)));
        o.line("# Recommended: sign manifests with minisign and bake the public key in.");
        o.line("# public-key = \"keys/k8r.pub\"");
    }
}

fn render_login(o: &mut Out, s: &Settings) {
    o.line("");
    o.line("[login]");
    match &s.password_hash {
        Some(h) => {
            o.line("# From the bash k8r's password_hash file.");
            o.line(format!("password-hash = {}", lit(h)));
        }
        None => {
            o.line("# REVIEW: the bash k8r set the password \"ubuntu\" when password_hash was absent;");
            o.line("# k8r sets none. Add a key (or a hash from `mkpasswd -m sha-512`):");
            o.line("# password-hash = \"\"");
        }
    }
    o.line("# ssh-authorized-keys = [\"ssh-ed25519 AAAA… you@laptop\"]");
}

fn render_components(o: &mut Out, s: &Settings) {
    o.line("");
    o.line("[components]");
    o.line("# The bash k8r installed kubeadm, kubelet and kubectl from apt and containerd");
    o.line("# from the distribution; k8r installs pinned upstream binaries. REVIEW: put the");
    o.line("# files, named as at their upstream URLs, into this directory, or pin each");
    o.line("# component with sha256 = { arm64 = \"…\" } (see examples/control-plane.toml).");
    o.line("# kubeadm, kubelet and kubectl follow kubernetes.version.");
    o.line("dir = \"components/\"");
    for (c, v) in runtime_versions(&s.k8s_version) {
        o.line("");
        o.line(format!("[components.{c}]"));
        o.line(format!("version = {}", lit(&v)));
    }
}

/// Validate the generated text with the real loader; map errors back to
/// the variables they came from.
fn check_generated(s: &Settings) -> Result<cluster::ClusterConfig, ImportError> {
    let text = render(s, true);
    cluster::from_str(&text, Path::new("/")).map_err(|e| {
        let Some(key) = e.key().map(str::to_string) else {
            return ImportError::Generated(e);
        };
        let origin = match key.as_str() {
            "kubernetes.service-cidr" | "kubernetes.pod-network-cidr" => {
                s.pod_cidr.as_ref().map(|p| ("POD_NETWORK_CIDR", p))
            }
            "kubernetes.control-plane-endpoint" => s.endpoint.as_ref().map(|p| ("CONTROL_PLANE_ENDPOINT", p)),
            "vendor.image" => Some(("IMAGE", &s.image)),
            _ => None,
        };
        match (origin, e) {
            (Some((var, src)), ConfigError::Invalid { reason, .. }) => {
                let reason = if key == "kubernetes.service-cidr" {
                    "overlaps the service network 10.96.0.0/12 (kubeadm's default, which the bash k8r used too); \
                     choose another pod network"
                        .to_string()
                } else {
                    reason
                };
                ImportError::Value { line: src.line, key: var.to_string(), value: src.value.clone(), reason }
            }
            (_, e) => ImportError::Generated(e),
        }
    })
}

// ---- KUBEADM_JOIN_STRING -------------------------------------------------

/// The parts of `kubeadm join HOST:PORT --token T --discovery-token-ca-cert-hash H …`.
#[derive(Debug, Default, PartialEq, Eq)]
struct JoinCommand {
    endpoint: Option<String>,
    token: Option<String>,
    ca_cert_hash: Option<String>,
    certificate_key: Option<String>,
    control_plane: bool,
    unsafe_skip_ca: bool,
}

/// kubeadm join flags that take a value.
const VALUE_FLAGS: [&str; 12] = [
    "token",
    "discovery-token-ca-cert-hash",
    "certificate-key",
    "cri-socket",
    "node-name",
    "apiserver-advertise-address",
    "apiserver-bind-port",
    "config",
    "discovery-file",
    "discovery-token",
    "tls-bootstrap-token",
    "ignore-preflight-errors",
];

fn parse_join_command(s: &str) -> Result<JoinCommand, String> {
    let mut words = s.split_whitespace().filter(|w| *w != "\\").peekable();
    if words.peek() == Some(&"sudo") {
        words.next();
    }
    if !words.next().is_some_and(|w| w.ends_with("kubeadm")) || words.next() != Some("join") {
        return Err("is not a `kubeadm join …` command".to_string());
    }
    let mut cmd = JoinCommand::default();
    while let Some(w) = words.next() {
        let Some(flag) = w.strip_prefix("--") else {
            if cmd.endpoint.is_some() {
                return Err("names more than one API server".to_string());
            }
            cmd.endpoint = Some(w.to_string());
            continue;
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (flag, None),
        };
        let takes_value = VALUE_FLAGS.contains(&name)
            || (inline.is_none()
                && !matches!(name, "control-plane" | "discovery-token-unsafe-skip-ca-verification" | "dry-run"));
        let value = match (inline, takes_value) {
            (Some(v), _) => Some(v),
            (None, true) => words.next_if(|n| !n.starts_with("--")).map(str::to_string),
            (None, false) => None,
        };
        match name {
            "token" | "discovery-token" => cmd.token = value,
            "discovery-token-ca-cert-hash" => cmd.ca_cert_hash = value,
            "certificate-key" => cmd.certificate_key = value,
            "control-plane" => cmd.control_plane = true,
            "discovery-token-unsafe-skip-ca-verification" => cmd.unsafe_skip_ca = true,
            _ => {}
        }
    }
    Ok(cmd)
}

/// A seed carrying the join string's credentials, or `None` with a warning.
fn join_seed(src: &Sourced, warnings: &mut Vec<String>) -> Option<String> {
    let line = src.line;
    let mut warn = |w: String| warnings.push(format!("line {line}: KUBEADM_JOIN_STRING {w}"));
    let cmd = match parse_join_command(&src.value) {
        Ok(c) => c,
        Err(r) => {
            warn(format!("{r}; no seed was made from it"));
            return None;
        }
    };
    if cmd.unsafe_skip_ca || cmd.ca_cert_hash.is_none() {
        warn(
            "joins without --discovery-token-ca-cert-hash (no CA pinning), which k8r refuses; no seed was made from it"
                .to_string(),
        );
        return None;
    }
    let seed = match seed_from_join(&cmd) {
        Ok(s) => s,
        Err(r) => {
            warn(format!("{r}; no seed was made from it"));
            return None;
        }
    };
    warn(
        "is a join secret, so it was not put into cluster.toml; it is returned as a seed.toml: set the hostname and \
         write it onto a node with `k8r seed` (the token has most likely expired: make a new one with \
         `kubeadm token create --print-join-command`)"
            .to_string(),
    );
    let header = format!(
        "# k8r seed converted from KUBEADM_JOIN_STRING (variables.cfg line {line}). It holds a join\n\
         # secret: keep it out of images and repositories. REVIEW: hostname, and the token's expiry.\n"
    );
    Some(header + &seed.render())
}

fn seed_from_join(cmd: &JoinCommand) -> Result<Seed, String> {
    let endpoint = cmd.endpoint.as_deref().ok_or("names no API server")?;
    let endpoint = cluster::join_endpoint(endpoint).map_err(|e| format!("has an API server that {}", reason_of(e)))?;
    let token: BootstrapToken =
        cmd.token.as_deref().ok_or("has no --token")?.parse().map_err(|r| format!("has a --token that {r}"))?;
    let hash: CaCertHash =
        cmd.ca_cert_hash.as_deref().unwrap_or_default().parse().map_err(|r| format!("has a CA hash that {r}"))?;
    let certificate_key = match (&cmd.certificate_key, cmd.control_plane) {
        (Some(k), true) => Some(k.parse::<CertificateKey>().map_err(|r| format!("has a --certificate-key that {r}"))?),
        _ => None,
    };
    let role = if cmd.control_plane { NodeRole::ControlPlane } else { NodeRole::Worker };
    let hostname = if cmd.control_plane { "control-plane-2" } else { "worker-1" };
    Ok(Seed {
        hostname: hostname.to_string(),
        role,
        join: Some(SeedJoin {
            endpoint: Some(endpoint),
            token: Some(token),
            ca_cert_hash: Some(hash),
            certificate_key,
            secrets_moved: false,
        }),
        ssh_authorized_keys: Vec::new(),
        node_ip: None,
        labels: BTreeMap::new(),
        taints: Vec::new(),
    })
}

fn reason_of(e: ConfigError) -> String {
    match e {
        ConfigError::Invalid { reason, .. } => reason,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str) -> Vec<(usize, String, String)> {
        parse_assignments(text).expect("parses").into_iter().map(|a| (a.line, a.key, a.value)).collect()
    }

    #[test]
    fn bash_words() {
        let cases = [
            ("bare", "A=b\n", "b"),
            ("double", "A=\"b c\"\n", "b c"),
            ("single", "A='b $c'\n", "b $c"),
            ("export", "export A=b\n", "b"),
            ("comment after", "A=b # note\n", "b"),
            ("hash inside word", "A=b#c\n", "b#c"),
            ("concatenated", "A=\"b\"'c'd\n", "bcd"),
            ("escaped dollar", "A=\"a\\$b\"\n", "a$b"),
            ("lone dollar", "A=\"a$\"\n", "a$"),
            ("continuation", "A=\"a \\\nb\"\n", "a b"),
            ("empty", "A=\n", ""),
            ("crlf", "A=b\r\n", "b"),
            ("byte-order mark", "\u{feff}A=b\n", "b"),
        ];
        for (name, text, want) in cases {
            let got = values(text);
            assert_eq!(got.len(), 1, "{name}");
            assert_eq!(got[0].2, want, "{name}");
        }
    }

    #[test]
    fn bash_refusals() {
        let cases = [
            ("command substitution", "A=$(cat x)\n", 1, "$(…)"),
            ("backticks", "\nA=`cat x`\n", 2, "`…`"),
            ("variable", "A=\"x/$K8S_VERSION/\"\n", 1, "variable expansion"),
            ("braced variable", "A=${B}\n", 1, "variable expansion"),
            ("tilde", "A=~/x\n", 1, "~"),
            ("command", "echo hi\n", 1, "not a KEY=value"),
            ("if", "if true; then A=1; fi\n", 1, "not a KEY=value"),
            ("source", "source x.cfg\n", 1, "not a KEY=value"),
            ("env prefix", "A=1 cmd\n", 1, "unexpected text"),
            ("semicolon", "A=1; B=2\n", 1, "one assignment per line"),
            ("array", "A=(1 2)\n", 1, "array"),
            ("unterminated", "A=\"x\nB=1\n", 1, "unterminated"),
        ];
        for (name, text, line, want) in cases {
            let err = parse_assignments(text).expect_err(name);
            let ImportError::Syntax { line: got, message } = &err else {
                panic!("{name}: {err:?}");
            };
            assert_eq!(*got, line, "{name}: {message}");
            assert!(message.contains(want), "{name}: {message}");
        }
    }

    #[test]
    fn join_commands() {
        let hash = format!("sha256:{}", "a".repeat(64));
        let cmd = parse_join_command(&format!(
            "kubeadm join 10.0.0.1:6443 --token abcdef.0123456789abcdef \\ --discovery-token-ca-cert-hash {hash}"
        ))
        .expect("parses");
        assert_eq!(cmd.endpoint.as_deref(), Some("10.0.0.1:6443"));
        assert_eq!(cmd.token.as_deref(), Some("abcdef.0123456789abcdef"));
        assert_eq!(cmd.ca_cert_hash.as_deref(), Some(hash.as_str()));
        assert!(!cmd.control_plane);
        let cp = parse_join_command(&format!(
            "sudo kubeadm join k8s.lan:6443 --token=abcdef.0123456789abcdef --discovery-token-ca-cert-hash={hash} --control-plane --certificate-key {}",
            "b".repeat(64)
        ))
        .expect("parses");
        assert!(cp.control_plane);
        assert_eq!(cp.certificate_key, Some("b".repeat(64)));
        assert!(parse_join_command("kubectl get nodes").is_err());
    }
}
