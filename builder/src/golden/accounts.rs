//! The login user of the golden root: set its password hash, or create it
//! (passwd, shadow, group, home) when the vendor image has no such user
//! (Ubuntu creates `ubuntu` only at first boot through cloud-init). Pure
//! text edits of `/etc/passwd`, `/etc/shadow` and `/etc/group`.

use anyhow::{bail, Context};

/// The account files, as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accounts {
    /// `/etc/passwd`.
    pub passwd: String,
    /// `/etc/shadow`.
    pub shadow: String,
    /// `/etc/group`.
    pub group: String,
}

/// A user k8r created, so the builder can make its home directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// User name.
    pub name: String,
    /// uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    /// Home directory.
    pub home: String,
}

/// Groups a login user joins when they exist (sudo on Debian/Ubuntu, wheel
/// on Alpine, adm for logs).
const ADMIN_GROUPS: [&str; 3] = ["sudo", "wheel", "adm"];

/// First uid/gid for a created user.
const FIRST_UID: u32 = 1000;

/// Set `user`'s password hash, creating the user when missing. `days` is
/// the "last changed" day written to shadow (never 0, which would force a
/// change at first login). `shell` is used for a new user.
pub fn set_login(
    a: &Accounts,
    user: &str,
    hash: &str,
    days: u64,
    shell: &str,
) -> anyhow::Result<(Accounts, Option<NewUser>)> {
    validate_name(user)?;
    if hash.contains([':', '\n']) {
        bail!("login.password-hash contains ':' or a newline");
    }
    let exists = a.passwd.lines().any(|l| l.split(':').next() == Some(user));
    let mut out = a.clone();
    let mut new_user = None;
    if !exists {
        let uid = free_id(&a.passwd, 2).context("choosing a uid")?;
        let gid = free_id(&a.group, 2).context("choosing a gid")?.max(uid);
        let home = format!("/home/{user}");
        out.passwd = append_line(&a.passwd, &format!("{user}:x:{uid}:{gid}::{home}:{shell}"));
        out.group = append_line(&a.group, &format!("{user}:x:{gid}:"));
        out.group = add_to_groups(&out.group, user);
        out.shadow = append_line(&a.shadow, &format!("{user}:{hash}:{days}:0:99999:7:::"));
        new_user = Some(NewUser { name: user.into(), uid, gid, home });
    } else if a.shadow.lines().any(|l| l.split(':').next() == Some(user)) {
        out.shadow = a
            .shadow
            .lines()
            .map(|l| {
                let mut f: Vec<&str> = l.split(':').collect();
                if f.first() == Some(&user) && f.len() >= 3 {
                    let days = days.to_string();
                    f[1] = hash;
                    let owned: Vec<String> =
                        f.iter().enumerate().map(|(i, s)| if i == 2 { days.clone() } else { s.to_string() }).collect();
                    return owned.join(":");
                }
                l.to_string()
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n";
    } else {
        out.shadow = append_line(&a.shadow, &format!("{user}:{hash}:{days}:0:99999:7:::"));
    }
    Ok((out, new_user))
}

fn validate_name(user: &str) -> anyhow::Result<()> {
    let ok = !user.is_empty()
        && user.len() <= 32
        && user.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && user.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !ok {
        bail!("login.user {user:?} is not a valid user name");
    }
    Ok(())
}

/// The first id ≥ [`FIRST_UID`] not used in column `col` of a colon file.
fn free_id(text: &str, col: usize) -> anyhow::Result<u32> {
    let used: std::collections::BTreeSet<u32> =
        text.lines().filter_map(|l| l.split(':').nth(col)).filter_map(|v| v.parse().ok()).collect();
    (FIRST_UID..60000).find(|id| !used.contains(id)).context("no free id below 60000")
}

fn append_line(text: &str, line: &str) -> String {
    let mut s = text.to_string();
    if !s.is_empty() && !s.ends_with('\n') {
        s.push('\n');
    }
    s.push_str(line);
    s.push('\n');
    s
}

fn add_to_groups(group: &str, user: &str) -> String {
    group
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() == 4 && ADMIN_GROUPS.contains(&f[0]) && !f[3].split(',').any(|m| m == user) {
                let members = if f[3].is_empty() { user.to_string() } else { format!("{},{user}", f[3]) };
                format!("{}:{}:{}:{members}", f[0], f[1], f[2])
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vendor() -> Accounts {
        Accounts {
            passwd: "root:x:0:0:root:/root:/bin/bash\nsyslog:x:104:111::/home/syslog:/usr/sbin/nologin\n".into(),
            shadow: "root:*:19000:0:99999:7:::\nsyslog:*:19000:0:99999:7:::\n".into(),
            group: "root:x:0:\nadm:x:4:syslog\nsudo:x:27:\n".into(),
        }
    }

    const HASH: &str = "$6$salt$abcdefghijklmnopqrstuvwxyz0123456789";

    #[test]
    fn creates_a_missing_user() {
        let (a, new) = set_login(&vendor(), "ubuntu", HASH, 20400, "/bin/bash").expect("create");
        let new = new.expect("created");
        assert_eq!((new.uid, new.gid, new.home.as_str()), (1000, 1000, "/home/ubuntu"));
        assert!(a.passwd.ends_with("ubuntu:x:1000:1000::/home/ubuntu:/bin/bash\n"));
        assert!(a.shadow.contains(&format!("ubuntu:{HASH}:20400:0:99999:7:::")));
        assert!(a.group.contains("sudo:x:27:ubuntu"));
        assert!(a.group.contains("adm:x:4:syslog,ubuntu"));
        assert!(a.group.contains("ubuntu:x:1000:"));
    }

    #[test]
    fn sets_the_hash_of_an_existing_user() {
        let (a, new) = set_login(&vendor(), "root", HASH, 20400, "/bin/sh").expect("set");
        assert!(new.is_none());
        assert!(a.shadow.starts_with(&format!("root:{HASH}:20400:0:99999:7:::\n")));
        assert_eq!(a.passwd, vendor().passwd);
    }

    #[test]
    fn refuses_bad_input() {
        assert!(set_login(&vendor(), "Bad User", HASH, 1, "/bin/sh").is_err());
        assert!(set_login(&vendor(), "ok", "x:y", 1, "/bin/sh").is_err());
    }
}
