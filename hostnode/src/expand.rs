//! `$(VAR)` expansion as the kubelet does it, and the mount-path rewrite (pure functions).

use std::path::PathBuf;

/// Expands `$(NAME)` references in `input` with `lookup`, by the Kubernetes rules: `$$` is an
/// escaped `$`, a reference `lookup` does not know stays as written, and an unclosed `$(` is
/// literal.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut checkpoint = 0;
    let mut cursor = 0;
    // NB: every index below sits next to an ASCII `$`, `(` or `)`, so it is a char boundary.
    while cursor < bytes.len() {
        if bytes[cursor] == b'$' && cursor + 1 < bytes.len() {
            out.push_str(&input[checkpoint..cursor]);
            let rest = &input[cursor + 1..];
            let advance = match rest.as_bytes()[0] {
                b'$' => {
                    out.push('$');
                    1
                }
                b'(' => match rest.find(')') {
                    Some(close) => {
                        let name = &rest[1..close];
                        match lookup(name) {
                            Some(value) => out.push_str(&value),
                            None => {
                                out.push_str("$(");
                                out.push_str(name);
                                out.push(')');
                            }
                        }
                        close + 1
                    }
                    None => {
                        out.push_str("$(");
                        1
                    }
                },
                _ => {
                    // `$x`: both characters literal (the second may be multi-byte).
                    let c = rest.chars().next().unwrap_or_default();
                    out.push('$');
                    out.push(c);
                    c.len_utf8()
                }
            };
            cursor += advance + 1;
            checkpoint = cursor;
        } else {
            cursor += 1;
        }
    }
    out.push_str(&input[checkpoint.min(input.len())..]);
    out
}

/// Where a container's mount paths live on this machine: each `mountPath` (as the manifest
/// writes it) and the local folder or file standing for it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mounts {
    /// Longest mount path first, so the longest prefix wins.
    entries: Vec<(String, PathBuf)>,
}

impl Mounts {
    /// The mounts, from `(mountPath, local path)` pairs. A mount at `/` is ignored (it would
    /// rewrite every absolute path).
    pub fn new(entries: impl IntoIterator<Item = (String, PathBuf)>) -> Self {
        let mut entries: Vec<(String, PathBuf)> = entries
            .into_iter()
            .map(|(m, p)| (m.trim_end_matches('/').to_owned(), p))
            .filter(|(m, _)| m.starts_with('/'))
            .collect();
        entries.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        entries.dedup_by(|a, b| a.0 == b.0);
        Self { entries }
    }

    /// The local path for `value` when it is a mount path or lies under one.
    pub fn map(&self, value: &str) -> Option<String> {
        self.entries.iter().find_map(|(mount, local)| {
            let rest = value.strip_prefix(mount.as_str())?;
            (rest.is_empty() || rest.starts_with('/')).then(|| format!("{}{rest}", local.display()))
        })
    }

    /// An environment value rewritten: the whole value when it starts with a mount path.
    pub fn rewrite_value(&self, value: &str) -> String {
        self.map(value).unwrap_or_else(|| value.to_owned())
    }

    /// An argument rewritten: the whole argument when it starts with a mount path, or the part
    /// after the first `=` of a flag (`--tls-cert-file=/etc/certs/tls.crt`).
    pub fn rewrite_arg(&self, arg: &str) -> String {
        if let Some(mapped) = self.map(arg) {
            return mapped;
        }
        if arg.starts_with('-')
            && let Some((flag, value)) = arg.split_once('=')
            && let Some(mapped) = self.map(value)
        {
            return format!("{flag}={mapped}");
        }
        arg.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "POD_IP" => Some("127.100.0.7".into()),
            "NAME" => Some("web".into()),
            _ => None,
        }
    }

    #[test]
    fn references_expand_escapes_collapse_and_unknown_ones_stay() {
        assert_eq!(
            expand("--bind=$(POD_IP):8443", env),
            "--bind=127.100.0.7:8443"
        );
        assert_eq!(expand("$(NAME)-$(NAME)", env), "web-web");
        assert_eq!(expand("$$(POD_IP)", env), "$(POD_IP)");
        assert_eq!(expand("$(MISSING) x", env), "$(MISSING) x");
        assert_eq!(expand("cost $5 and $$", env), "cost $5 and $");
        assert_eq!(expand("open $(POD_IP", env), "open $(POD_IP");
        assert_eq!(expand("trailing $", env), "trailing $");
        assert_eq!(expand("é$(NAME)é$ü", env), "éwebé$ü");
        assert_eq!(expand("", env), "");
    }

    fn mounts() -> Mounts {
        Mounts::new([
            (
                "/etc/certs".to_owned(),
                PathBuf::from("/pods/p/volumes/certs"),
            ),
            (
                "/etc/certs/ca/".to_owned(),
                PathBuf::from("/pods/p/volumes/ca"),
            ),
            ("/tmp".to_owned(), PathBuf::from("/pods/p/volumes/tmp")),
            ("/".to_owned(), PathBuf::from("/nowhere")),
        ])
    }

    #[test]
    fn the_longest_mount_path_prefix_wins_and_only_on_a_path_boundary() {
        let m = mounts();
        assert_eq!(
            m.rewrite_value("/etc/certs/tls.crt"),
            "/pods/p/volumes/certs/tls.crt"
        );
        assert_eq!(
            m.rewrite_value("/etc/certs/ca/ca.crt"),
            "/pods/p/volumes/ca/ca.crt"
        );
        assert_eq!(m.rewrite_value("/etc/certs"), "/pods/p/volumes/certs");
        assert_eq!(m.rewrite_value("/etc/certsx/a"), "/etc/certsx/a");
        assert_eq!(m.rewrite_value("/usr/bin/x"), "/usr/bin/x");
        assert_eq!(m.rewrite_value("relative/etc/certs"), "relative/etc/certs");
    }

    #[test]
    fn flags_with_a_path_after_the_equals_sign_are_rewritten() {
        let m = mounts();
        assert_eq!(
            m.rewrite_arg("--tls-cert-file=/etc/certs/tls.crt"),
            "--tls-cert-file=/pods/p/volumes/certs/tls.crt"
        );
        assert_eq!(m.rewrite_arg("/tmp/x"), "/pods/p/volumes/tmp/x");
        assert_eq!(m.rewrite_arg("name=/tmp/x"), "name=/tmp/x");
        assert_eq!(m.rewrite_arg("--level=info"), "--level=info");
    }
}
