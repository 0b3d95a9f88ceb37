//! Typed configuration of the mock, with its defaults.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::str::FromStr;
use std::time::Duration;

use cci_api::signing::Credentials;

/// Where the mock listens unless told otherwise: loopback, any free port.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));

/// How long a new pod stays `Pending` before it turns `Running`, unless told otherwise.
pub const DEFAULT_RUNNING_AFTER: Duration = Duration::from_millis(500);

/// How long the seed's `perl -Mbignum=bpi -wle 'print bpi(2000)'` runs before it exits 0.
pub const DEFAULT_COMPUTE_TIME: Duration = Duration::from_secs(3);

/// How long a container that exits on SIGTERM takes to stop after a graceful delete (see
/// [`crate::behaviour::OnSigterm`]): the pod goes then, or at its grace period's end if sooner.
pub const DEFAULT_STOP_TIME: Duration = Duration::from_secs(1);

/// The kubelet's first restart back-off; it doubles per restart up to five minutes.
pub const DEFAULT_RESTART_BACKOFF: Duration = Duration::from_secs(10);

/// How long a request hit by a `timeout` fault is left waiting before it is answered `504`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// How many pod changes are kept for watches that resume from a `resourceVersion`.
pub const DEFAULT_WATCH_HISTORY: usize = 10_000;

/// How many requests the request log keeps.
pub const DEFAULT_REQUEST_LOG: usize = 10_000;

/// How long a new Network takes to turn `Ready`, unless told otherwise: CCI sets a network up
/// asynchronously (the published example's `NetworkSynced` condition comes a second after its
/// `creationTimestamp`).
pub const DEFAULT_NETWORK_READY_AFTER: Duration = Duration::from_secs(1);

/// How long a deleted namespace stays `Terminating` after the last of its pods went, unless
/// told otherwise: CCI deletes a namespace asynchronously (its DELETE answers the namespace with
/// `status.phase: Terminating`), removing its content first.
pub const DEFAULT_NAMESPACE_TERMINATION: Duration = Duration::from_secs(2);

/// The grace period of a pod that names none, as Kubernetes defaults
/// `terminationGracePeriodSeconds` (and CCI's DELETE documents "the default grace period").
pub const DEFAULT_GRACE_SECONDS: i64 = 30;

/// The finalizer CCI keeps on a pod until its billing is settled and it is gone. CCI's API
/// reference names no such finalizer: the name is the mock's own.
pub const BILLING_FINALIZER: &str = "cci.io/billing";

/// The storage classes accepted as SFS and SFS Turbo: the names CCE's Everest driver gives them.
pub const DEFAULT_SFS_STORAGE_CLASSES: [&str; 2] = ["csi-nas", "csi-sfsturbo"];

/// Everything the mock needs to know before it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MockConfig {
    /// The address [`Server::bind`](crate::Server::bind) listens on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// The accepted tokens (`X-Auth-Token` values), each mapped to the tenant (project) it
    /// authenticates as. Several tokens may map to one tenant.
    pub tokens: BTreeMap<String, String>,
    /// The accepted AK/SK pairs (requests signed `SDK-HMAC-SHA256`), by access key, each with
    /// the tenant it authenticates as. `Debug` shows no secret key.
    pub access_keys: BTreeMap<String, AkSkSpec>,
    /// How long after its creation a pod turns `Running`.
    pub running_after: Duration,
    /// How long the seed's `perl … bpi(2000)` container runs (see [`crate::behaviour`]).
    pub compute_time: Duration,
    /// The first restart back-off of a container (doubling, capped at five minutes).
    pub restart_backoff: Duration,
    /// How long containers that exit on SIGTERM take to stop after a graceful delete.
    pub stop_time: Duration,
    /// How long a `timeout` fault leaves a request waiting before answering `504`.
    pub timeout: Duration,
    /// How many pod changes watches can resume from.
    pub watch_history: usize,
    /// How many requests the request log keeps.
    pub request_log: usize,
    /// The storage classes that are SFS or SFS Turbo; claims of any other class are refused.
    pub sfs_storage_classes: Vec<String>,
    /// How long after its creation a Network turns `Ready` (pods of its namespace wait for it).
    pub network_ready_after: Duration,
    /// The VPC subnets the mock knows, by ID: pods of a namespace whose Ready Network names one
    /// get their addresses from its CIDR; other subnets' pods get fake `172.31.x.y` ones.
    pub subnets: BTreeMap<String, SubnetCidr>,
    /// How long a deleted namespace stays `Terminating` after its last pod went; zero removes
    /// an empty namespace at its DELETE.
    pub namespace_termination: Duration,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN,
            tokens: BTreeMap::new(),
            access_keys: BTreeMap::new(),
            running_after: DEFAULT_RUNNING_AFTER,
            compute_time: DEFAULT_COMPUTE_TIME,
            restart_backoff: DEFAULT_RESTART_BACKOFF,
            stop_time: DEFAULT_STOP_TIME,
            timeout: DEFAULT_TIMEOUT,
            watch_history: DEFAULT_WATCH_HISTORY,
            request_log: DEFAULT_REQUEST_LOG,
            sfs_storage_classes: DEFAULT_SFS_STORAGE_CLASSES.map(String::from).to_vec(),
            network_ready_after: DEFAULT_NETWORK_READY_AFTER,
            subnets: BTreeMap::new(),
            namespace_termination: DEFAULT_NAMESPACE_TERMINATION,
        }
    }
}

impl MockConfig {
    /// Accepts `token` as the credential of `tenant`.
    #[must_use]
    pub fn with_token(mut self, token: impl Into<String>, tenant: impl Into<String>) -> Self {
        self.tokens.insert(token.into(), tenant.into());
        self
    }

    /// Accepts requests signed with this AK/SK pair as `tenant`'s.
    #[must_use]
    pub fn with_access_key(mut self, credentials: Credentials, tenant: impl Into<String>) -> Self {
        let spec = AkSkSpec {
            credentials,
            tenant: tenant.into(),
        };
        self.access_keys
            .insert(spec.credentials.access_key().to_owned(), spec);
        self
    }

    /// Sets how long after its creation a pod turns `Running`.
    #[must_use]
    pub fn with_running_after(mut self, running_after: Duration) -> Self {
        self.running_after = running_after;
        self
    }

    /// Sets how long after its creation a Network turns `Ready`.
    #[must_use]
    pub fn with_network_ready_after(mut self, after: Duration) -> Self {
        self.network_ready_after = after;
        self
    }

    /// Sets how long a deleted namespace stays `Terminating` after its last pod went.
    #[must_use]
    pub fn with_namespace_termination(mut self, after: Duration) -> Self {
        self.namespace_termination = after;
        self
    }

    /// Makes VPC subnet `id` known with `cidr`: pods on it get addresses from it.
    #[must_use]
    pub fn with_subnet(mut self, id: impl Into<String>, cidr: SubnetCidr) -> Self {
        self.subnets.insert(id.into(), cidr);
        self
    }

    /// Sets how long the seed's `perl … bpi(2000)` container runs.
    #[must_use]
    pub fn with_compute_time(mut self, compute_time: Duration) -> Self {
        self.compute_time = compute_time;
        self
    }

    /// Sets how long containers that exit on SIGTERM take to stop after a graceful delete.
    #[must_use]
    pub fn with_stop_time(mut self, stop_time: Duration) -> Self {
        self.stop_time = stop_time;
        self
    }

    /// Sets the first restart back-off.
    #[must_use]
    pub fn with_restart_backoff(mut self, backoff: Duration) -> Self {
        self.restart_backoff = backoff;
        self
    }

    /// Sets how long a `timeout` fault leaves a request waiting.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets how many pod changes watches can resume from.
    #[must_use]
    pub fn with_watch_history(mut self, events: usize) -> Self {
        self.watch_history = events;
        self
    }

    /// Sets the storage classes accepted as SFS / SFS Turbo.
    #[must_use]
    pub fn with_sfs_storage_classes(mut self, classes: &[&str]) -> Self {
        self.sfs_storage_classes = classes.iter().map(|c| (*c).to_owned()).collect();
        self
    }

    /// Sets the listen address.
    #[must_use]
    pub fn with_listen(mut self, listen: SocketAddr) -> Self {
        self.listen = listen;
        self
    }
}

/// One `--token` argument: `TOKEN` (the tenant is the token itself) or `TOKEN=TENANT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenSpec {
    /// The value clients send in `X-Auth-Token`.
    pub token: String,
    /// The tenant (project) the token authenticates as.
    pub tenant: String,
}

/// Why a `--token` argument was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("token {spec:?} is not of the form TOKEN or TOKEN=TENANT: {problem}")]
pub struct TokenSpecError {
    spec: String,
    problem: &'static str,
}

impl FromStr for TokenSpec {
    type Err = TokenSpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let refuse = |problem| TokenSpecError {
            spec: spec.to_owned(),
            problem,
        };
        let (token, tenant) = spec.split_once('=').unwrap_or((spec, spec));
        if token.is_empty() {
            return Err(refuse("the token is empty"));
        }
        if tenant.is_empty() {
            return Err(refuse("the tenant after '=' is empty"));
        }
        // NB: a header value cannot hold control characters, so such a token could never be sent.
        if token.chars().any(|c| c.is_ascii_control() || !c.is_ascii()) {
            return Err(refuse("the token must be printable ASCII"));
        }
        Ok(Self {
            token: token.to_owned(),
            tenant: tenant.to_owned(),
        })
    }
}

/// Parses a token file: one `TOKEN` or `TOKEN=TENANT` per line; blank lines and lines starting
/// with `#` are skipped. The error names the line.
pub fn parse_token_file(text: &str) -> Result<Vec<TokenSpec>, String> {
    text.lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
        .map(|(number, line)| {
            line.parse()
                .map_err(|e: TokenSpecError| format!("line {number}: {e}"))
        })
        .collect()
}

/// One line of an `--aksk-file`: `AK:SK` (the tenant is the access key) or `AK:SK=TENANT`.
/// The secret key ends at the first `=`, so it may hold none (Huawei Cloud's hold letters and
/// digits only). `Debug` shows no secret key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AkSkSpec {
    /// The access key and its secret key.
    pub credentials: Credentials,
    /// The tenant (project) the pair authenticates as.
    pub tenant: String,
}

impl FromStr for AkSkSpec {
    type Err = String;

    /// Parses `AK:SK` or `AK:SK=TENANT`; the error never repeats the text (it holds a secret).
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let form = "is not of the form AK:SK or AK:SK=TENANT";
        let (access_key, rest) = spec.split_once(':').ok_or(format!("the line {form}"))?;
        let (secret_key, tenant) = match rest.split_once('=') {
            Some((secret_key, tenant)) => (secret_key, tenant.trim()),
            None => (rest, access_key.trim()),
        };
        if tenant.is_empty() {
            return Err(format!("the tenant after '=' is empty: the line {form}"));
        }
        let credentials = Credentials::new(access_key.trim(), secret_key.trim())
            .map_err(|e| format!("{e}: the line {form}"))?;
        Ok(Self {
            credentials,
            tenant: tenant.to_owned(),
        })
    }
}

/// Parses an AK/SK file: one `AK:SK` or `AK:SK=TENANT` per line; blank lines and lines starting
/// with `#` are skipped. The error names the line by number, never by its text.
pub fn parse_aksk_file(text: &str) -> Result<Vec<AkSkSpec>, String> {
    text.lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
        .map(|(number, line)| {
            line.parse()
                .map_err(|problem| format!("line {number}: {problem}"))
        })
        .collect()
}

impl fmt::Display for TokenSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.token, self.tenant)
    }
}

/// An IPv4 subnet CIDR (`192.168.0.0/24`), the address range of a VPC subnet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubnetCidr {
    /// The network address (host bits zero).
    pub network: Ipv4Addr,
    /// The prefix length, 0 to 32.
    pub prefix: u8,
}

impl SubnetCidr {
    /// How many pod addresses it has: all but the network address, the gateway (the first
    /// host, as VPC subnets reserve it) and the broadcast address.
    pub fn pod_addresses(&self) -> u32 {
        let size = 1u64 << (32 - u32::from(self.prefix));
        u32::try_from(size.saturating_sub(3)).unwrap_or(u32::MAX)
    }

    /// Pod address number `index` (below [`pod_addresses`](Self::pod_addresses)).
    pub fn pod_address(&self, index: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network).wrapping_add(2).wrapping_add(index))
    }

    /// Whether `ip` lies in it.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0);
        u32::from(ip) & mask == u32::from(self.network)
    }
}

impl FromStr for SubnetCidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (ip, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a CIDR like 192.168.0.0/24"))?;
        let ip: Ipv4Addr = ip
            .parse()
            .map_err(|_| format!("{s:?}: {ip:?} is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| format!("{s:?}: the prefix must be 0 to 32"))?;
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
        Ok(Self {
            network: Ipv4Addr::from(u32::from(ip) & mask),
            prefix,
        })
    }
}

impl fmt::Display for SubnetCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// A `--subnet ID=CIDR` flag: a VPC subnet the mock knows.
pub fn parse_subnet_flag(flag: &str) -> Result<(String, SubnetCidr), String> {
    let (id, cidr) = flag
        .split_once('=')
        .ok_or_else(|| format!("{flag:?} is not ID=CIDR"))?;
    if id.trim().is_empty() {
        return Err(format!("{flag:?} names no subnet ID"));
    }
    Ok((id.trim().to_owned(), cidr.trim().parse()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::bare_token_is_its_own_tenant("abc", "abc", "abc")]
    #[case::token_and_tenant("abc=tenant-a", "abc", "tenant-a")]
    #[case::tenant_may_contain_equals("abc=a=b", "abc", "a=b")]
    fn token_spec_parses(#[case] spec: &str, #[case] token: &str, #[case] tenant: &str) {
        let parsed: TokenSpec = spec.parse().unwrap();
        assert_eq!(parsed.token, token);
        assert_eq!(parsed.tenant, tenant);
    }

    #[rstest]
    #[case::empty("")]
    #[case::empty_token("=tenant")]
    #[case::empty_tenant("abc=")]
    #[case::control_character("a\tb")]
    fn token_spec_refuses(#[case] spec: &str) {
        let err = spec.parse::<TokenSpec>().unwrap_err();
        assert!(err.to_string().contains("TOKEN=TENANT"), "{err}");
    }

    #[test]
    fn a_token_file_has_one_token_per_line_and_comments() {
        let specs = parse_token_file("# tenants\na=tenant-a\n\n  b  \n").unwrap();
        assert_eq!(specs.len(), 2);
        assert_eq!(
            (specs[1].token.as_str(), specs[1].tenant.as_str()),
            ("b", "b")
        );
        let err = parse_token_file("ok\n=bad\n").unwrap_err();
        assert!(err.starts_with("line 2: "), "{err}");
    }

    #[rstest]
    #[case::access_key_is_its_own_tenant("AK1:sk-one", "AK1", "AK1")]
    #[case::access_key_and_tenant("AK1:sk-one=tenant-a", "AK1", "tenant-a")]
    #[case::spaces_around("  AK1 : sk-one = tenant-a ", "AK1", "tenant-a")]
    fn an_aksk_spec_parses(#[case] spec: &str, #[case] access_key: &str, #[case] tenant: &str) {
        let parsed: AkSkSpec = spec.parse().unwrap();
        assert_eq!(parsed.credentials.access_key(), access_key);
        assert_eq!(parsed.tenant, tenant);
    }

    #[rstest]
    #[case::no_colon("AK1 sk-one")]
    #[case::empty_secret_key("AK1:=tenant-a")]
    #[case::empty_tenant("AK1:sk-one=")]
    #[case::access_key_with_a_comma("A,K:sk-one")]
    fn an_aksk_spec_refuses_without_repeating_the_secret(#[case] spec: &str) {
        let err = spec.parse::<AkSkSpec>().unwrap_err();
        assert!(err.contains("AK:SK=TENANT"), "{err}");
        assert!(!err.contains("sk-one"), "{err}");
    }

    #[test]
    fn an_aksk_file_has_one_pair_per_line_and_comments() {
        let specs = parse_aksk_file("# pairs\nAK1:one=tenant-a\n\n  AK2:two  \n").unwrap();
        assert_eq!(specs.len(), 2);
        assert_eq!(
            (specs[1].credentials.access_key(), specs[1].tenant.as_str()),
            ("AK2", "AK2")
        );
        let err = parse_aksk_file("AK1:one\nAK2 two-secret\n").unwrap_err();
        assert!(err.starts_with("line 2: "), "{err}");
        assert!(!err.contains("two-secret"), "{err}");
    }

    #[test]
    fn a_config_shows_no_secret_key_in_debug() {
        let config = MockConfig::default()
            .with_access_key(Credentials::new("AK1", "sk-one").unwrap(), "tenant-a");
        let debug = format!("{config:?}");
        assert!(debug.contains("AK1"), "{debug}");
        assert!(!debug.contains("sk-one"), "{debug}");
    }

    #[test]
    fn default_config_listens_on_a_free_loopback_port_and_starts_pods_after_half_a_second() {
        let config = MockConfig::default();
        assert_eq!(config.listen.to_string(), "127.0.0.1:0");
        assert_eq!(config.running_after, Duration::from_millis(500));
        assert!(config.tokens.is_empty());
        assert!(config.access_keys.is_empty());
        assert_eq!(config.sfs_storage_classes, ["csi-nas", "csi-sfsturbo"]);
    }
}
