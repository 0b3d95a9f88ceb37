//! Where a CCI client's AK/SK pair comes from, and (with the `reqwest` feature) how a
//! `reqwest` request is signed with it: the glue every client of CCI in this workspace shares,
//! on top of the pure algorithm of [`crate::signing`].
//!
//! A pair comes from the environment ([`ACCESS_KEY_ENV`] and [`SECRET_KEY_ENV`], both or
//! neither) or from a file of one `AK:SK` line ([`parse_file`]); never from a flag, since a
//! command line is seen by everyone on the machine.

use crate::signing::Credentials;

/// The environment variable the access key of an AK/SK pair may come from.
pub const ACCESS_KEY_ENV: &str = "CCI_ACCESS_KEY";
/// The environment variable the secret key of an AK/SK pair may come from.
pub const SECRET_KEY_ENV: &str = "CCI_SECRET_KEY";

/// Parses the text of an AK/SK file: one `AK:SK` line; blank lines and lines starting with `#`
/// are skipped. The error names the line by number, never by its text (it holds the secret).
pub fn parse_file(text: &str) -> Result<Credentials, String> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'));
    let (number, line) = lines.next().ok_or("the AK/SK file holds no AK:SK line")?;
    if let Some((extra, _)) = lines.next() {
        return Err(format!(
            "the AK/SK file holds more than one pair (line {extra}): it takes one AK:SK line"
        ));
    }
    Credentials::parse_pair(line).map_err(|e| format!("the AK/SK file, line {number}: {e}"))
}

/// The pair given, if any: the text of an AK/SK file ([`parse_file`]) when there is one, else
/// the values of [`ACCESS_KEY_ENV`] and [`SECRET_KEY_ENV`] (empty values count as unset). Only
/// one of the two variables set is an error naming the other; no error repeats a secret.
pub fn pair_from(
    file: Option<&str>,
    access_key: Option<String>,
    secret_key: Option<String>,
) -> Result<Option<Credentials>, String> {
    let (access_key, secret_key) = (
        access_key.filter(|v| !v.is_empty()),
        secret_key.filter(|v| !v.is_empty()),
    );
    match (file, access_key, secret_key) {
        (Some(text), ..) => parse_file(text).map(Some),
        (None, Some(access_key), Some(secret_key)) => Credentials::new(access_key, secret_key)
            .map(Some)
            .map_err(|e| format!("{ACCESS_KEY_ENV}/{SECRET_KEY_ENV}: {e}")),
        (None, Some(_), None) => Err(format!(
            "{ACCESS_KEY_ENV} is set but {SECRET_KEY_ENV} is not: an AK/SK pair needs both"
        )),
        (None, None, Some(_)) => Err(format!(
            "{SECRET_KEY_ENV} is set but {ACCESS_KEY_ENV} is not: an AK/SK pair needs both"
        )),
        (None, None, None) => Ok(None),
    }
}

/// The one CCI credential a client was given.
#[derive(Clone, PartialEq, Eq)]
pub enum Given {
    /// An IAM token.
    Token(String),
    /// An AK/SK pair.
    Pair(Credentials),
}

/// The one credential given: `token` (an empty one counts as none), or the pair of
/// [`pair_from`]. `Ok(None)` when neither is given; both is an error, as is half a pair; no
/// error repeats a secret.
pub fn one_credential(
    token: Option<String>,
    aksk_file: Option<&str>,
    access_key: Option<String>,
    secret_key: Option<String>,
) -> Result<Option<Given>, String> {
    let pair = pair_from(aksk_file, access_key, secret_key)?;
    match (token.filter(|t| !t.is_empty()), pair) {
        (Some(_), Some(_)) => Err(format!(
            "both a CCI token (CCI_TOKEN or --cci-token-file) and an AK/SK pair ({ACCESS_KEY_ENV} and {SECRET_KEY_ENV}, or --cci-aksk-file) are given: give one"
        )),
        (Some(token), None) => Ok(Some(Given::Token(token))),
        (None, Some(pair)) => Ok(Some(Given::Pair(pair))),
        (None, None) => Ok(None),
    }
}

/// [`pair_from`] with the variables of this process's environment.
pub fn pair_from_env(file: Option<&str>) -> Result<Option<Credentials>, String> {
    pair_from(
        file,
        std::env::var(ACCESS_KEY_ENV).ok(),
        std::env::var(SECRET_KEY_ENV).ok(),
    )
}

/// Signs `request` at `now`: sets `Host` (hyper then sends it as it is, so the service sees
/// what was signed), and adds `X-Sdk-Date` and `Authorization`. Every header the request has
/// by now is signed; those the connection adds later (`content-length`) are not. A body that
/// is a stream (not bytes in memory) is signed as empty: the clients of CCI send JSON.
#[cfg(feature = "reqwest")]
pub fn sign_request(
    request: &mut reqwest::Request,
    credentials: &Credentials,
    now: std::time::SystemTime,
) {
    use crate::signing::{self, SdkDate};
    use reqwest::header::HOST;

    let url = request.url();
    let host = match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        // NB: an http(s) URL always has a host; what else would be sent is not CCI's.
        (None, _) => String::new(),
    };
    request.headers_mut().insert(HOST, header_value(host));
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_owned(), value)
        })
        .collect();
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let url = request.url();
    let signed = signing::sign(
        credentials,
        &signing::Request {
            method: request.method().as_str(),
            path: url.path(),
            query: url.query().unwrap_or_default(),
            headers: &pairs,
            body: request
                .body()
                .and_then(reqwest::Body::as_bytes)
                .unwrap_or_default(),
        },
        SdkDate::from_system_time(now),
    );
    for (name, value) in signed.headers() {
        request
            .headers_mut()
            .insert(name, header_value(value.to_owned()));
    }
}

/// A header value of text that is printable ASCII by construction: a URL's host and port, a
/// date, or an `Authorization` whose access key `Credentials::new` checked.
#[cfg(feature = "reqwest")]
fn header_value(text: String) -> reqwest::header::HeaderValue {
    reqwest::header::HeaderValue::try_from(text)
        .unwrap_or_else(|_| unreachable!("printable ASCII by construction"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rstest::rstest]
    #[case::a_token_and_a_pair(Some("tok"), None, Some("AK"), Some("two-secret"), "give one")]
    #[case::a_token_and_a_pair_file(Some("tok"), Some("AK:two-secret"), None, None, "give one")]
    #[case::an_access_key_alone(None, None, Some("AK"), None, "CCI_SECRET_KEY is not")]
    #[case::a_file_without_a_pair(None, Some("# none"), None, None, "no AK:SK line")]
    #[case::two_pairs(None, Some("A:one-secret\nB:two-secret"), None, None, "line 2")]
    fn a_doubled_or_half_credential_is_refused_without_its_secret(
        #[case] token: Option<&str>,
        #[case] file: Option<&str>,
        #[case] access_key: Option<&str>,
        #[case] secret_key: Option<&str>,
        #[case] because: &str,
    ) {
        let err = one_credential(
            token.map(String::from),
            file,
            access_key.map(String::from),
            secret_key.map(String::from),
        )
        .err()
        .expect("refused");
        assert!(err.contains(because), "{err}");
        assert!(!err.contains("two-secret"), "{err}");
    }

    #[test]
    fn an_empty_token_is_no_token_and_nothing_given_is_none() {
        assert!(one_credential(Some(String::new()), None, None, None) == Ok(None));
        assert!(
            one_credential(Some("tok".into()), None, None, None)
                == Ok(Some(Given::Token("tok".into())))
        );
    }

    #[rstest::rstest]
    #[case::an_access_key_alone(None, Some("AK"), None, "CCI_SECRET_KEY is not")]
    #[case::a_secret_key_alone(None, None, Some("two-secret"), "CCI_ACCESS_KEY is not")]
    #[case::an_empty_file(Some("# none\n"), None, None, "no AK:SK line")]
    #[case::two_pairs(Some("A:one-secret\nB:two-secret"), None, None, "line 2")]
    #[case::no_colon(Some("AK two-secret"), None, None, "line 1")]
    fn a_half_or_malformed_pair_is_refused_without_its_secret(
        #[case] file: Option<&str>,
        #[case] access_key: Option<&str>,
        #[case] secret_key: Option<&str>,
        #[case] because: &str,
    ) {
        let err = pair_from(
            file,
            access_key.map(String::from),
            secret_key.map(String::from),
        )
        .unwrap_err();
        assert!(err.contains(because), "{err}");
        assert!(!err.contains("two-secret"), "{err}");
    }

    #[test]
    fn a_file_wins_over_the_environment_and_empty_values_are_unset() {
        let pair = pair_from(
            Some("# mine\nFILEAK:file-secret\n"),
            Some("ENVAK".into()),
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!(pair.access_key(), "FILEAK");
        assert_eq!(pair_from(None, Some(String::new()), None), Ok(None));
        let pair = pair_from(None, Some("ENVAK".into()), Some("env-secret".into()))
            .unwrap()
            .unwrap();
        assert_eq!(pair.access_key(), "ENVAK");
    }

    #[cfg(feature = "reqwest")]
    mod signed {
        use super::super::sign_request;
        use crate::signing::{self, Credentials};
        use std::time::SystemTime;

        /// A request as a client builds it (no client needed: none is sent).
        fn request(method: reqwest::Method, url: &str, json: Option<&str>) -> reqwest::Request {
            let mut request = reqwest::Request::new(method, url.parse().unwrap());
            if let Some(json) = json {
                request.headers_mut().insert(
                    reqwest::header::CONTENT_TYPE,
                    reqwest::header::HeaderValue::from_static("application/json"),
                );
                *request.body_mut() = Some(json.to_owned().into());
            }
            request
        }

        #[test]
        fn a_signed_request_carries_host_date_and_authorization_and_verifies() {
            let credentials = Credentials::new("AK", "secret").unwrap();
            let mut request = request(
                reqwest::Method::POST,
                "http://cci.example:8443/apis/cci/v2/namespaces?dryRun=All",
                Some(r#"{"metadata":{"name":"ns"}}"#),
            );
            let now = SystemTime::now();
            sign_request(&mut request, &credentials, now);
            let headers = request.headers();
            assert_eq!(headers["host"], "cci.example:8443");
            assert!(headers.contains_key("x-sdk-date"));
            assert!(!headers.contains_key(crate::AUTH_HEADER));
            let authorization = headers["authorization"].to_str().unwrap();
            assert!(
                authorization.starts_with(
                    "SDK-HMAC-SHA256 Access=AK, SignedHeaders=content-type;host;x-sdk-date, Signature="
                ),
                "{authorization}"
            );
            let pairs: Vec<(&str, &str)> = headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
                .collect();
            let verified = signing::verify(
                &signing::Request {
                    method: "POST",
                    path: request.url().path(),
                    query: request.url().query().unwrap_or_default(),
                    headers: &pairs,
                    body: request.body().and_then(reqwest::Body::as_bytes).unwrap(),
                },
                now,
                |_| Some(&credentials),
            );
            assert_eq!(verified.as_deref(), Ok("AK"));
        }

        #[test]
        fn a_default_port_is_left_out_of_the_signed_host() {
            let credentials = Credentials::new("AK", "secret").unwrap();
            let mut request = request(
                reqwest::Method::GET,
                "https://cci.example:443/apis/cci/v2/namespaces",
                None,
            );
            sign_request(&mut request, &credentials, SystemTime::now());
            assert_eq!(request.headers()["host"], "cci.example");
        }
    }
}
