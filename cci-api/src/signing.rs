//! AK/SK request signing (`SDK-HMAC-SHA256`), as Huawei Cloud's *API Request Signing Guide*
//! defines it: the client side ([`sign`]) and the service side ([`verify`]). Pure: no IO, no
//! clock (the caller passes the date, and "now").
//!
//! The algorithm, step by step (each step is a public function, so a test or a puzzled operator
//! can look at the intermediate strings):
//!
//! 1. [`canonical_request`]: `method\n` [`canonical_uri`] `\n` [`canonical_query_string`] `\n`
//!    [`canonical_headers`] `\n` signed headers (`a;b;c`) `\n` hex SHA-256 of the body
//!    ([`payload_hash`]);
//! 2. [`string_to_sign`]: `SDK-HMAC-SHA256\n` + the `X-Sdk-Date` value + `\n` + the hex
//!    SHA-256 of the canonical request;
//! 3. [`signature`]: hex HMAC-SHA256 of the string to sign, keyed by the secret key;
//! 4. the header `Authorization: SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;b;c, Signature=…`
//!    next to `X-Sdk-Date: YYYYMMDDTHHMMSSZ`.
//!
//! The service refuses a request whose `X-Sdk-Date` is more than [`DATE_WINDOW`] (15 minutes)
//! away from its own clock, and one whose signed headers lack `x-sdk-date`
//! ([`REQUIRED_SIGNED_HEADERS`]).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::jiff::civil::DateTime;
use k8s_openapi::jiff::tz::TimeZone;
use sha2::{Digest, Sha256};

/// The algorithm name, first word of the `Authorization` header and first line of the string
/// to sign.
pub const ALGORITHM: &str = "SDK-HMAC-SHA256";
/// The header carrying the signing time, `YYYYMMDDTHHMMSSZ` (UTC).
pub const DATE_HEADER: &str = "X-Sdk-Date";
/// The header carrying the signature.
pub const AUTHORIZATION_HEADER: &str = "Authorization";
/// The optional header declaring the body's hash instead of leaving it to be computed; the
/// guide documents its value [`UNSIGNED_PAYLOAD`] for a body left out of the signature.
pub const CONTENT_SHA256_HEADER: &str = "X-Sdk-Content-Sha256";
/// The [`CONTENT_SHA256_HEADER`] value that leaves the body out of the signature: it then
/// stands in the canonical request where the body's hash would.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// How far `X-Sdk-Date` may be from the service's clock, either way: the guide's API gateway
/// refuses a request whose signing time differs from its own by more than 15 minutes.
pub const DATE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// The headers a signature must cover: the guide makes `X-Sdk-Date` the one mandatory signed
/// header ("only X-Sdk-Date is required and other request header parameters are optional").
pub const REQUIRED_SIGNED_HEADERS: [&str; 1] = ["x-sdk-date"];

/// The `X-Sdk-Date` format, for jiff's `strftime`/`strptime`.
const DATE_FORMAT: &str = "%Y%m%dT%H%M%SZ";

type HmacSha256 = Hmac<Sha256>;

/// Everything that can go wrong in signing or verifying: unusable credentials, and each reason
/// a service refuses a signed request for. The messages never contain a secret key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    /// The access key or secret key cannot be used (the problem says which and why).
    #[error("the AK/SK pair is unusable: {problem}")]
    InvalidCredentials {
        /// What is wrong, naming the access key or the secret key (never its value).
        problem: &'static str,
    },

    /// The `Authorization` or `X-Sdk-Date` header is not of the guide's form.
    #[error("malformed AK/SK signature: {problem}")]
    Malformed {
        /// What is wrong, and what the form is.
        problem: String,
    },

    /// No secret key is known for the access key.
    #[error("the access key {access_key:?} is not known to this service")]
    UnknownAccessKey {
        /// The `Access=` value.
        access_key: String,
    },

    /// A header the signature must cover is not among the signed headers.
    #[error(
        "the header {header} is not among the SignedHeaders: a signature must cover it (signed: {signed})"
    )]
    UnsignedHeader {
        /// The lowercase header name.
        header: &'static str,
        /// The `SignedHeaders=` value.
        signed: String,
    },

    /// A header named in `SignedHeaders` is not in the request.
    #[error("the header {header} is listed in SignedHeaders but the request does not carry it")]
    MissingSignedHeader {
        /// The lowercase header name.
        header: String,
    },

    /// `X-Sdk-Date` is more than [`DATE_WINDOW`] away from the service's clock.
    #[error(
        "the X-Sdk-Date {date} is {skew_seconds} s {direction} the service's time, more than the {} minutes allowed: sign with the current UTC time",
        DATE_WINDOW.as_secs() / 60
    )]
    DateOutsideWindow {
        /// The `X-Sdk-Date` value.
        date: String,
        /// How far it is from the service's clock, in whole seconds.
        skew_seconds: u64,
        /// `before` or `after`.
        direction: &'static str,
    },

    /// The body is not the one whose hash [`CONTENT_SHA256_HEADER`] declares.
    #[error(
        "the body's SHA-256 is {actual}, not the {declared} its signed {CONTENT_SHA256_HEADER} declares: the body was changed after signing"
    )]
    BodyHashMismatch {
        /// The declared hash.
        declared: String,
        /// The hash of the body received.
        actual: String,
    },

    /// The signature is not the one the secret key gives for this request.
    #[error(
        "the signature does not match: the method, path, query, signed headers or body differ from what was signed, or the request was not signed with this access key's secret key"
    )]
    WrongSignature,
}

/// An access key (AK) and its secret key (SK). `Debug` shows the access key only.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    access_key: String,
    secret_key: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // NB: never the secret key: configurations holding credentials are logged with `?`.
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// A credential pair. The access key must be printable ASCII without spaces or commas (it
    /// is a field of the `Authorization` header); the secret key must not be empty.
    pub fn new(
        access_key: impl Into<String>,
        secret_key: impl Into<String>,
    ) -> Result<Self, SigningError> {
        let (access_key, secret_key) = (access_key.into(), secret_key.into());
        let refuse = |problem| Err(SigningError::InvalidCredentials { problem });
        if access_key.is_empty() {
            return refuse("the access key is empty");
        }
        if !access_key
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b',')
        {
            return refuse("the access key must be printable ASCII without spaces or commas");
        }
        if secret_key.is_empty() {
            return refuse("the secret key is empty");
        }
        Ok(Self {
            access_key,
            secret_key,
        })
    }

    /// Parses `AK:SK` (the secret key is everything after the first `:`). The error never
    /// repeats the text, which holds the secret.
    pub fn parse_pair(pair: &str) -> Result<Self, SigningError> {
        let (access_key, secret_key) =
            pair.split_once(':')
                .ok_or(SigningError::InvalidCredentials {
                    problem: "the pair is not of the form AK:SK",
                })?;
        Self::new(access_key.trim(), secret_key.trim())
    }

    /// The access key (AK).
    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    /// The secret key (SK), to hand the pair on where it is kept as a secret (a child process's
    /// environment, a file only its owner reads, a Kubernetes Secret): never to a log, a report
    /// or a command line.
    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }
}

/// A signing time: whole seconds, UTC, written `YYYYMMDDTHHMMSSZ` (e.g. `20191115T033655Z`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SdkDate(Timestamp);

impl SdkDate {
    /// The date of `time`, cut to the second (times before 1970 count as 1970).
    pub fn from_system_time(time: SystemTime) -> Self {
        let seconds = time.duration_since(UNIX_EPOCH).map_or(0, |since| {
            i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
        });
        // NB: jiff's range ends in year 9999; a clock past it is clamped there.
        Self(Timestamp::from_second(seconds).unwrap_or(Timestamp::MAX))
    }

    /// Parses an `X-Sdk-Date` value, strictly `YYYYMMDDTHHMMSSZ`.
    pub fn parse(value: &str) -> Result<Self, SigningError> {
        let malformed = || SigningError::Malformed {
            problem: format!(
                "the {DATE_HEADER} {value:?} is not a UTC time of the form YYYYMMDDTHHMMSSZ"
            ),
        };
        // NB: strptime alone would take e.g. a 5-digit year; the form is fixed-width.
        let shape_ok = value.len() == 16
            && value.bytes().enumerate().all(|(i, b)| match i {
                8 => b == b'T',
                15 => b == b'Z',
                _ => b.is_ascii_digit(),
            });
        if !shape_ok {
            return Err(malformed());
        }
        let civil = DateTime::strptime(DATE_FORMAT, value).map_err(|_| malformed())?;
        let timestamp = TimeZone::UTC.to_timestamp(civil).map_err(|_| malformed())?;
        Ok(Self(timestamp))
    }

    /// The date as a `SystemTime`.
    pub fn to_system_time(self) -> SystemTime {
        let seconds = self.0.as_second();
        match u64::try_from(seconds) {
            Ok(after) => UNIX_EPOCH + Duration::from_secs(after),
            Err(_) => UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs()),
        }
    }
}

impl fmt::Display for SdkDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // NB: a Timestamp formats in UTC, which is what the trailing Z says.
        write!(f, "{}", self.0.strftime(DATE_FORMAT))
    }
}

/// The parts of an HTTP request that a signature covers, as sent on the wire.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// The method, e.g. `GET`.
    pub method: &'a str,
    /// The path as sent (percent-encoded), e.g. `/apis/cci/v2/namespaces`.
    pub path: &'a str,
    /// The query as sent, without the `?` (empty when there is none).
    pub query: &'a str,
    /// The headers as `(name, value)`, names in any case; a name may repeat.
    pub headers: &'a [(&'a str, &'a str)],
    /// The body (empty for none).
    pub body: &'a [u8],
}

impl Request<'_> {
    /// The values of header `name` (any case), trimmed, joined by `,`; `None` when absent.
    fn header(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
            .collect();
        (!values.is_empty()).then(|| values.join(","))
    }
}

/// The headers [`sign`] gives a request: add both, replacing any of the same names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedHeaders {
    /// The `X-Sdk-Date` value.
    pub date: String,
    /// The `Authorization` value.
    pub authorization: String,
}

impl SignedHeaders {
    /// `(name, value)` of the two headers to add.
    pub fn headers(&self) -> [(&'static str, &str); 2] {
        [
            (DATE_HEADER, self.date.as_str()),
            (AUTHORIZATION_HEADER, self.authorization.as_str()),
        ]
    }
}

/// Signs `request` at `date`: every header in `request.headers` is signed (so pass those the
/// service will see as sent, `Host` among them), plus `X-Sdk-Date`; an `Authorization` or
/// `X-Sdk-Date` already there is left out (the answer replaces them).
pub fn sign(credentials: &Credentials, request: &Request<'_>, date: SdkDate) -> SignedHeaders {
    let date = date.to_string();
    let mut headers: Vec<(&str, &str)> = request
        .headers
        .iter()
        .filter(|(name, _)| {
            !name.eq_ignore_ascii_case(AUTHORIZATION_HEADER)
                && !name.eq_ignore_ascii_case(DATE_HEADER)
        })
        .copied()
        .collect();
    headers.push((DATE_HEADER, &date));
    let mut signed: Vec<String> = headers
        .iter()
        .map(|(name, _)| name.to_ascii_lowercase())
        .collect();
    signed.sort();
    signed.dedup();
    let signed: Vec<&str> = signed.iter().map(String::as_str).collect();
    let request = Request {
        headers: &headers,
        ..*request
    };
    // NB: every signed name comes from `headers`, so none can be missing.
    let canonical = canonical_request(&request, &signed).unwrap_or_default();
    let signature = signature(credentials, &string_to_sign(&date, &canonical));
    SignedHeaders {
        authorization: format!(
            "{ALGORITHM} Access={}, SignedHeaders={}, Signature={signature}",
            credentials.access_key,
            signed.join(";")
        ),
        date,
    }
}

/// The canonical request: method, [`canonical_uri`], [`canonical_query_string`],
/// [`canonical_headers`] of `signed_headers` (lowercase, sorted), the signed header names
/// joined by `;`, and [`payload_hash`], each on its own line.
pub fn canonical_request(
    request: &Request<'_>,
    signed_headers: &[&str],
) -> Result<String, SigningError> {
    Ok(format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method,
        canonical_uri(request.path),
        canonical_query_string(request.query),
        canonical_headers(request, signed_headers)?,
        signed_headers.join(";"),
        payload_hash(request),
    ))
}

/// The canonical URI: each `/`-separated segment of `path` decoded and URI-encoded again
/// ([`uri_encode`]), ending in `/` (the guide appends one when the path lacks it; the request
/// itself is sent without).
pub fn canonical_uri(path: &str) -> String {
    let mut uri = path
        .split('/')
        .map(|segment| uri_encode(&percent_decode(segment, false)))
        .collect::<Vec<_>>()
        .join("/");
    if !uri.starts_with('/') {
        uri.insert(0, '/');
    }
    if !uri.ends_with('/') {
        uri.push('/');
    }
    uri
}

/// The canonical query string: each parameter decoded, then its name and value URI-encoded
/// ([`uri_encode`]) as `name=value` (`name=` when it has no value), sorted by name (then by
/// value), joined by `&`. Empty when there is no query.
pub fn canonical_query_string(query: &str) -> String {
    let mut parameters: Vec<(String, String)> = query
        .split('&')
        .filter(|parameter| !parameter.is_empty())
        .map(|parameter| {
            let (name, value) = parameter.split_once('=').unwrap_or((parameter, ""));
            // NB: `+` is a space in a query (form encoding, as serde_urlencoded writes it).
            (
                uri_encode(&percent_decode(name, true)),
                uri_encode(&percent_decode(value, true)),
            )
        })
        .collect();
    parameters.sort();
    parameters
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The canonical headers: for each of `signed_headers` (lowercase, in order), `name:value\n`,
/// the value trimmed (several values of one name joined by `,`). A signed header the request
/// does not carry is [`SigningError::MissingSignedHeader`].
pub fn canonical_headers(
    request: &Request<'_>,
    signed_headers: &[&str],
) -> Result<String, SigningError> {
    signed_headers
        .iter()
        .map(|name| {
            request
                .header(name)
                .map(|value| format!("{name}:{value}\n"))
                .ok_or_else(|| SigningError::MissingSignedHeader {
                    header: (*name).to_owned(),
                })
        })
        .collect()
}

/// The body's place in the canonical request: the lowercase hex SHA-256 of the body, unless the
/// request declares it in [`CONTENT_SHA256_HEADER`] (e.g. [`UNSIGNED_PAYLOAD`]), which then
/// stands there as declared.
pub fn payload_hash(request: &Request<'_>) -> String {
    request
        .header(CONTENT_SHA256_HEADER)
        .unwrap_or_else(|| sha256_hex(request.body))
}

/// The string to sign: [`ALGORITHM`], the `X-Sdk-Date` value and the hex SHA-256 of the
/// canonical request, one per line.
pub fn string_to_sign(date: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{date}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// The signature: lowercase hex HMAC-SHA256 of `string_to_sign`, keyed by the secret key.
pub fn signature(credentials: &Credentials, string_to_sign: &str) -> String {
    hex(&mac(credentials, string_to_sign).finalize().into_bytes())
}

fn mac(credentials: &Credentials, string_to_sign: &str) -> HmacSha256 {
    // NB: HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let mut mac = HmacSha256::new_from_slice(credentials.secret_key.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(string_to_sign.as_bytes());
    mac
}

/// The three fields of an `Authorization: SDK-HMAC-SHA256 …` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    /// `Access=`: the access key.
    pub access_key: String,
    /// `SignedHeaders=`: lowercase names, sorted, without repeats.
    pub signed_headers: Vec<String>,
    /// `Signature=`: 64 lowercase hex digits.
    pub signature: String,
}

impl Authorization {
    /// Parses the header value: `SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;b, Signature=hex`
    /// (a space, no comma, after the algorithm; the fields separated by commas).
    pub fn parse(value: &str) -> Result<Self, SigningError> {
        let malformed = |problem: String| SigningError::Malformed {
            problem: format!(
                "{problem}; the form is {AUTHORIZATION_HEADER}: {ALGORITHM} Access=AK, SignedHeaders=h1;h2, Signature=HEX"
            ),
        };
        let fields = value
            .strip_prefix(ALGORITHM)
            .and_then(|rest| rest.strip_prefix(' '))
            .ok_or_else(|| {
                malformed(format!(
                    "the {AUTHORIZATION_HEADER} header does not start with {ALGORITHM:?} and a space"
                ))
            })?;
        let (mut access, mut signed, mut signature) = (None, None, None);
        for field in fields.split(',') {
            let (key, field_value) = field
                .trim()
                .split_once('=')
                .ok_or_else(|| malformed(format!("the field {:?} has no '='", field.trim())))?;
            let slot = match key {
                "Access" => &mut access,
                "SignedHeaders" => &mut signed,
                "Signature" => &mut signature,
                other => return Err(malformed(format!("unknown field {other:?}"))),
            };
            if slot.replace(field_value).is_some() {
                return Err(malformed(format!("the field {key} appears twice")));
            }
        }
        let (Some(access), Some(signed), Some(signature)) = (access, signed, signature) else {
            return Err(malformed("a field is missing".into()));
        };
        if access.is_empty() {
            return Err(malformed("Access is empty".into()));
        }
        let signed_headers: Vec<String> = signed.split(';').map(str::to_owned).collect();
        let canonical = signed_headers.iter().all(|name| {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b.is_ascii_uppercase())
        }) && signed_headers.windows(2).all(|pair| pair[0] < pair[1]);
        if !canonical {
            return Err(malformed(format!(
                "SignedHeaders {signed:?} is not a list of lowercase header names, sorted, without repeats, joined by ';'"
            )));
        }
        let hex_ok = signature.len() == 64
            && signature
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex_ok {
            return Err(malformed(format!(
                "Signature {signature:?} is not 64 lowercase hex digits"
            )));
        }
        Ok(Self {
            access_key: access.to_owned(),
            signed_headers,
            signature: signature.to_owned(),
        })
    }
}

/// Verifies the signature of `request` as the service does, at `now`: the `Authorization`
/// header's form, the access key (`secret_key_of` gives its [`Credentials`], `None` when
/// unknown), the [`REQUIRED_SIGNED_HEADERS`], that every signed header is present, the
/// `X-Sdk-Date` within [`DATE_WINDOW`] of `now`, a declared body hash, then the signature.
/// Answers the access key, or the first reason to refuse.
pub fn verify<'c>(
    request: &Request<'_>,
    now: SystemTime,
    secret_key_of: impl FnOnce(&str) -> Option<&'c Credentials>,
) -> Result<String, SigningError> {
    let value = request
        .header(AUTHORIZATION_HEADER)
        .ok_or_else(|| SigningError::Malformed {
            problem: format!("the request has no {AUTHORIZATION_HEADER} header"),
        })?;
    let authorization = Authorization::parse(&value)?;
    let credentials = secret_key_of(&authorization.access_key)
        .filter(|credentials| credentials.access_key == authorization.access_key)
        .ok_or_else(|| SigningError::UnknownAccessKey {
            access_key: authorization.access_key.clone(),
        })?;
    let signed: Vec<&str> = authorization
        .signed_headers
        .iter()
        .map(String::as_str)
        .collect();
    for required in REQUIRED_SIGNED_HEADERS {
        if !signed.contains(&required) {
            return Err(SigningError::UnsignedHeader {
                header: required,
                signed: signed.join(";"),
            });
        }
    }
    // NB: checked before the date, so a header dropped in transit is named as such.
    let canonical_headers = canonical_headers(request, &signed)?;
    let date = request
        .header(DATE_HEADER)
        .ok_or_else(|| SigningError::MissingSignedHeader {
            header: REQUIRED_SIGNED_HEADERS[0].to_owned(),
        })?;
    check_window(&date, SdkDate::parse(&date)?, now)?;
    let actual = sha256_hex(request.body);
    if let Some(declared) = request.header(CONTENT_SHA256_HEADER)
        && declared != UNSIGNED_PAYLOAD
        && declared != actual
    {
        return Err(SigningError::BodyHashMismatch { declared, actual });
    }
    // NB: the canonical request once more, from the parts already checked above.
    let canonical = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{}\n{}",
        request.method,
        canonical_uri(request.path),
        canonical_query_string(request.query),
        signed.join(";"),
        payload_hash(request),
    );
    let expected = decode_hex(&authorization.signature);
    // NB: `verify_slice` compares in constant time: no timing hint of the right signature.
    mac(credentials, &string_to_sign(&date, &canonical))
        .verify_slice(&expected)
        .map_err(|_| SigningError::WrongSignature)?;
    Ok(authorization.access_key)
}

fn check_window(raw: &str, date: SdkDate, now: SystemTime) -> Result<(), SigningError> {
    let signed_at = date.to_system_time();
    let (skew, direction) = match now.duration_since(signed_at) {
        Ok(behind) => (behind, "before"),
        Err(ahead) => (ahead.duration(), "after"),
    };
    if skew > DATE_WINDOW {
        return Err(SigningError::DateOutsideWindow {
            date: raw.to_owned(),
            skew_seconds: skew.as_secs(),
            direction,
        });
    }
    Ok(())
}

/// Percent-encodes every byte but RFC 3986's unreserved characters (`A-Z a-z 0-9 - _ . ~`),
/// as `%XY` with uppercase hex digits.
pub fn uri_encode(bytes: &[u8]) -> String {
    let mut encoded = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    encoded
}

/// Decodes `%XY` escapes (and `+` as a space when `plus_is_space`); a `%` not followed by two
/// hex digits stays as it is.
fn percent_decode(text: &str, plus_is_space: bool) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => match (hex_value(bytes.get(i + 1)), hex_value(bytes.get(i + 2))) {
                (Some(high), Some(low)) => {
                    decoded.push(high << 4 | low);
                    i += 3;
                    continue;
                }
                _ => decoded.push(b'%'),
            },
            b'+' if plus_is_space => decoded.push(b' '),
            other => decoded.push(other),
        }
        i += 1;
    }
    decoded
}

fn hex_value(digit: Option<&u8>) -> Option<u8> {
    char::from(*digit?)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

fn decode_hex(text: &str) -> Vec<u8> {
    text.as_bytes()
        .chunks(2)
        .filter_map(|pair| Some(hex_value(pair.first())? << 4 | hex_value(pair.get(1))?))
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
