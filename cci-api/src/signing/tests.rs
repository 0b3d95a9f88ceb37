use std::time::{Duration, SystemTime};

use rstest::rstest;

use super::*;

// The worked example of the API Request Signing Guide ("AK/SK Signing and Authentication
// Algorithm": Constructing a Standard Request, Creating a To-Be-Signed String, Calculating the
// Signature, Adding the Signature to the Request Header): the VPC list request
// `GET https://service.region.example.com/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs?limit=2&marker=13551d6b-755d-4757-b956-536f674975c0`
// with `Content-Type: application/json`, signed at 20191115T033655Z. Every value below is the
// guide's, copied as published.
const GUIDE_AK: &str = "QTWAOYTTINDUT2QVKYUC";
const GUIDE_SK: &str = "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc";
const GUIDE_DATE: &str = "20191115T033655Z";
const GUIDE_PATH: &str = "/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs";
const GUIDE_QUERY: &str = "limit=2&marker=13551d6b-755d-4757-b956-536f674975c0";
const GUIDE_CANONICAL_REQUEST: &str = "GET
/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs/
limit=2&marker=13551d6b-755d-4757-b956-536f674975c0
content-type:application/json
host:service.region.example.com
x-sdk-date:20191115T033655Z

content-type;host;x-sdk-date
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const GUIDE_HASHED_CANONICAL_REQUEST: &str =
    "b25362e603ee30f4f25e7858e8a7160fd36e803bb2dfe206278659d71a9bcd7a";
const GUIDE_SIGNATURE: &str = "7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe";
const GUIDE_AUTHORIZATION: &str = "SDK-HMAC-SHA256 Access=QTWAOYTTINDUT2QVKYUC, SignedHeaders=content-type;host;x-sdk-date, Signature=7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe";

const GUIDE_HEADERS: [(&str, &str); 2] = [
    ("Content-Type", "application/json"),
    ("Host", "service.region.example.com"),
];

fn guide_credentials() -> Credentials {
    Credentials::new(GUIDE_AK, GUIDE_SK).unwrap()
}

fn guide_request<'a>(headers: &'a [(&'a str, &'a str)]) -> Request<'a> {
    Request {
        method: "GET",
        path: GUIDE_PATH,
        query: GUIDE_QUERY,
        headers,
        body: b"",
    }
}

fn at(date: &str) -> SystemTime {
    SdkDate::parse(date).unwrap().to_system_time()
}

#[test]
fn the_guides_canonical_request_is_reproduced_byte_for_byte() {
    let headers = [
        GUIDE_HEADERS[0],
        GUIDE_HEADERS[1],
        ("X-Sdk-Date", GUIDE_DATE),
    ];
    let canonical = canonical_request(
        &guide_request(&headers),
        &["content-type", "host", "x-sdk-date"],
    )
    .unwrap();
    assert_eq!(canonical, GUIDE_CANONICAL_REQUEST);
    assert_eq!(
        sha256_hex(canonical.as_bytes()),
        GUIDE_HASHED_CANONICAL_REQUEST
    );
}

#[test]
fn the_guides_string_to_sign_and_signature_are_reproduced() {
    let to_sign = string_to_sign(GUIDE_DATE, GUIDE_CANONICAL_REQUEST);
    assert_eq!(
        to_sign,
        format!("SDK-HMAC-SHA256\n{GUIDE_DATE}\n{GUIDE_HASHED_CANONICAL_REQUEST}")
    );
    assert_eq!(signature(&guide_credentials(), &to_sign), GUIDE_SIGNATURE);
}

#[test]
fn signing_the_guides_request_gives_its_published_headers() {
    let signed = sign(
        &guide_credentials(),
        &guide_request(&GUIDE_HEADERS),
        SdkDate::parse(GUIDE_DATE).unwrap(),
    );
    assert_eq!(signed.date, GUIDE_DATE);
    assert_eq!(signed.authorization, GUIDE_AUTHORIZATION);
    assert_eq!(
        signed.headers(),
        [
            ("X-Sdk-Date", GUIDE_DATE),
            ("Authorization", GUIDE_AUTHORIZATION)
        ]
    );
}

#[test]
fn the_guides_signed_request_verifies_as_its_access_key() {
    let headers = [
        GUIDE_HEADERS[0],
        GUIDE_HEADERS[1],
        ("x-sdk-date", GUIDE_DATE),
        ("Authorization", GUIDE_AUTHORIZATION),
    ];
    let credentials = guide_credentials();
    let verified = verify(
        &guide_request(&headers),
        at(GUIDE_DATE) + Duration::from_secs(60),
        |ak| (ak == GUIDE_AK).then_some(&credentials),
    );
    assert_eq!(verified.as_deref(), Ok(GUIDE_AK));
}

#[rstest]
#[case::empty_path_is_the_root("", "/")]
#[case::root_stays("/", "/")]
#[case::a_slash_is_appended("/apis/cci/v2/namespaces", "/apis/cci/v2/namespaces/")]
#[case::a_trailing_slash_is_kept("/v1/vpcs/", "/v1/vpcs/")]
#[case::escapes_are_kept_uppercase("/a%2fb/c%20d", "/a%2Fb/c%20d/")]
#[case::reserved_characters_are_escaped("/a:b/c@d/e b", "/a%3Ab/c%40d/e%20b/")]
#[case::unreserved_characters_are_unescaped("/%7Ex/a%2Db", "/~x/a-b/")]
#[case::utf8_is_escaped_per_byte("/café", "/caf%C3%A9/")]
fn the_canonical_uri_encodes_each_segment_and_ends_in_a_slash(
    #[case] path: &str,
    #[case] expected: &str,
) {
    assert_eq!(canonical_uri(path), expected);
}

#[rstest]
#[case::no_query("", "")]
#[case::sorted_by_name("b=2&a=1", "a=1&b=2")]
#[case::uppercase_sorts_before_lowercase("b=1&F=2", "F=2&b=1")]
#[case::an_empty_value_keeps_its_equals_sign("parm2&parm1=value1", "parm1=value1&parm2=")]
#[case::a_repeated_name_is_sorted_by_value("x=2&x=1", "x=1&x=2")]
#[case::plus_is_a_space_written_percent_20("q=a+b", "q=a%20b")]
#[case::reserved_characters_are_escaped("sel=app%3Dweb,tier!=db", "sel=app%3Dweb%2Ctier%21%3Ddb")]
#[case::unreserved_characters_are_unescaped("t=%7E%2D", "t=~-")]
#[case::empty_parameters_are_dropped("&a=1&&", "a=1")]
fn the_canonical_query_string_is_encoded_and_sorted(#[case] query: &str, #[case] expected: &str) {
    assert_eq!(canonical_query_string(query), expected);
}

#[test]
fn canonical_headers_are_lowercase_trimmed_and_in_the_signed_order() {
    let headers = [
        ("X-Sdk-Date", " 20191115T033655Z "),
        ("HOST", "cci.example.com"),
        ("X-Multi", "a"),
        ("x-multi", " b"),
    ];
    let request = Request {
        headers: &headers,
        ..guide_request(&[])
    };
    assert_eq!(
        canonical_headers(&request, &["host", "x-multi", "x-sdk-date"]).unwrap(),
        "host:cci.example.com\nx-multi:a,b\nx-sdk-date:20191115T033655Z\n"
    );
    assert_eq!(
        canonical_headers(&request, &["content-type"]),
        Err(SigningError::MissingSignedHeader {
            header: "content-type".into()
        })
    );
}

#[test]
fn the_payload_hash_is_the_bodys_unless_declared() {
    let body = br#"{"kind":"Namespace"}"#;
    let request = Request {
        body,
        ..guide_request(&[])
    };
    assert_eq!(payload_hash(&request), sha256_hex(body));
    let unsigned = [("X-Sdk-Content-Sha256", "UNSIGNED-PAYLOAD")];
    let request = Request {
        headers: &unsigned,
        ..request
    };
    assert_eq!(payload_hash(&request), "UNSIGNED-PAYLOAD");
}

#[test]
fn a_date_is_written_and_read_as_yyyymmddthhmmssz_in_utc() {
    let date = SdkDate::parse(GUIDE_DATE).unwrap();
    assert_eq!(date.to_string(), GUIDE_DATE);
    let since_epoch = date
        .to_system_time()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    // 2019-11-15T03:36:55Z.
    assert_eq!(since_epoch.as_secs(), 1_573_789_015);
    let with_millis = date.to_system_time() + Duration::from_millis(999);
    assert_eq!(SdkDate::from_system_time(with_millis), date);
}

#[rstest]
#[case::iso_punctuation("2019-11-15T03:36:55Z")]
#[case::no_zone("20191115T033655")]
#[case::lowercase_t("20191115t033655Z")]
#[case::month_13("20191315T033655Z")]
#[case::hour_25("20191115T253655Z")]
#[case::five_digit_year("020191115T03365Z")]
#[case::empty("")]
fn a_date_of_another_form_is_malformed(#[case] value: &str) {
    let err = SdkDate::parse(value).unwrap_err();
    assert!(matches!(err, SigningError::Malformed { .. }), "{err:?}");
    assert!(err.to_string().contains("YYYYMMDDTHHMMSSZ"), "{err}");
}

#[test]
fn credentials_never_show_the_secret_key() {
    let credentials = guide_credentials();
    let debug = format!("{credentials:?}");
    assert!(debug.contains(GUIDE_AK), "{debug}");
    assert!(!debug.contains(GUIDE_SK), "{debug}");
    let err = Credentials::parse_pair(&format!("bad key:{GUIDE_SK}")).unwrap_err();
    assert!(!err.to_string().contains(GUIDE_SK), "{err}");
    let err = Credentials::parse_pair(GUIDE_SK).unwrap_err();
    assert!(!err.to_string().contains(GUIDE_SK), "{err}");
}

#[rstest]
#[case::pair("AK:SK", "AK")]
#[case::spaces_around("  AK : SK  ", "AK")]
#[case::secret_may_hold_colons("AK:S:K", "AK")]
fn a_pair_parses_as_ak_colon_sk(#[case] pair: &str, #[case] access_key: &str) {
    assert_eq!(
        Credentials::parse_pair(pair).unwrap().access_key(),
        access_key
    );
}

#[rstest]
#[case::no_colon("AKSK")]
#[case::empty_access_key(":SK")]
#[case::empty_secret_key("AK:")]
#[case::access_key_with_a_comma("A,K:SK")]
fn a_pair_of_another_form_is_refused(#[case] pair: &str) {
    assert!(matches!(
        Credentials::parse_pair(pair),
        Err(SigningError::InvalidCredentials { .. })
    ));
}

#[rstest]
#[case::another_algorithm("AWS4-HMAC-SHA256 Access=A, SignedHeaders=x-sdk-date, Signature=00")]
#[case::comma_after_the_algorithm(
    "SDK-HMAC-SHA256, Access=A, SignedHeaders=x-sdk-date, Signature=0"
)]
#[case::missing_signature("SDK-HMAC-SHA256 Access=A, SignedHeaders=x-sdk-date")]
#[case::unknown_field("SDK-HMAC-SHA256 Access=A, SignedHeaders=h, Signature=0, Extra=1")]
#[case::repeated_field("SDK-HMAC-SHA256 Access=A, Access=B, SignedHeaders=h, Signature=0")]
#[case::uppercase_signed_header(
    "SDK-HMAC-SHA256 Access=A, SignedHeaders=Host;x-sdk-date, Signature=0"
)]
#[case::unsorted_signed_headers(
    "SDK-HMAC-SHA256 Access=A, SignedHeaders=x-sdk-date;host, Signature=0"
)]
#[case::empty_signed_header(
    "SDK-HMAC-SHA256 Access=A, SignedHeaders=host;;x-sdk-date, Signature=0"
)]
#[case::short_signature("SDK-HMAC-SHA256 Access=A, SignedHeaders=x-sdk-date, Signature=abc")]
#[case::uppercase_hex(
    "SDK-HMAC-SHA256 Access=A, SignedHeaders=x-sdk-date, Signature=7BE6668032F70418FCC22ABC52071E57AFF61B84A1D2381BB430D6870F4F6EBE"
)]
fn an_authorization_header_of_another_form_is_malformed(#[case] value: &str) {
    let err = Authorization::parse(value).unwrap_err();
    assert!(matches!(err, SigningError::Malformed { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("the form is Authorization: SDK-HMAC-SHA256"),
        "{err}"
    );
}

#[test]
fn the_guides_authorization_header_parses_into_its_fields() {
    assert_eq!(
        Authorization::parse(GUIDE_AUTHORIZATION).unwrap(),
        Authorization {
            access_key: GUIDE_AK.into(),
            signed_headers: vec!["content-type".into(), "host".into(), "x-sdk-date".into()],
            signature: GUIDE_SIGNATURE.into(),
        }
    );
}

/// A signed `POST` to the CCI namespaces collection, as a client sends it.
struct Signed {
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

const CCI_AK: &str = "CCIACCESSKEY";
const CCI_SK: &str = "cci-secret-key";
const SIGNED_AT: &str = "20260102T030405Z";

impl Signed {
    fn post(extra: &[(&'static str, &str)]) -> Self {
        let body = br#"{"metadata":{"name":"bursting-c1"}}"#.to_vec();
        let mut headers = vec![
            ("Host", "127.0.0.1:8443".to_owned()),
            ("Content-Type", "application/json".to_owned()),
        ];
        headers.extend(extra.iter().map(|(n, v)| (*n, (*v).to_owned())));
        let borrowed: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let signed = sign(
            &Credentials::new(CCI_AK, CCI_SK).unwrap(),
            &Request {
                method: "POST",
                path: "/apis/cci/v2/namespaces",
                query: "",
                headers: &borrowed,
                body: &body,
            },
            SdkDate::parse(SIGNED_AT).unwrap(),
        );
        headers.push(("X-Sdk-Date", signed.date));
        headers.push(("Authorization", signed.authorization));
        Self { headers, body }
    }

    fn set(mut self, name: &str, value: &str) -> Self {
        for header in &mut self.headers {
            if header.0.eq_ignore_ascii_case(name) {
                header.1 = value.to_owned();
            }
        }
        self
    }

    fn without(mut self, name: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }

    fn verify_with(&self, secret_key: &str, now: SystemTime) -> Result<String, SigningError> {
        let headers: Vec<(&str, &str)> =
            self.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let credentials = Credentials::new(CCI_AK, secret_key).unwrap();
        verify(
            &Request {
                method: "POST",
                path: "/apis/cci/v2/namespaces",
                query: "",
                headers: &headers,
                body: &self.body,
            },
            now,
            |ak| (ak == CCI_AK).then_some(&credentials),
        )
    }

    fn verify(&self) -> Result<String, SigningError> {
        self.verify_with(CCI_SK, at(SIGNED_AT))
    }
}

#[test]
fn a_signed_request_verifies_as_its_access_key() {
    assert_eq!(Signed::post(&[]).verify().as_deref(), Ok(CCI_AK));
}

#[test]
fn a_request_signed_with_another_secret_key_is_refused() {
    assert_eq!(
        Signed::post(&[]).verify_with("another-secret", at(SIGNED_AT)),
        Err(SigningError::WrongSignature)
    );
}

#[test]
fn an_unknown_access_key_is_refused_naming_it() {
    let request = Signed::post(&[]);
    let headers: Vec<(&str, &str)> = request
        .headers
        .iter()
        .map(|(n, v)| (*n, v.as_str()))
        .collect();
    let err = verify(
        &Request {
            method: "POST",
            path: "/apis/cci/v2/namespaces",
            query: "",
            headers: &headers,
            body: &request.body,
        },
        at(SIGNED_AT),
        |_| None,
    )
    .unwrap_err();
    assert_eq!(
        err,
        SigningError::UnknownAccessKey {
            access_key: CCI_AK.into()
        }
    );
}

#[rstest]
#[case::just_inside_before(-(15 * 60), true)]
#[case::just_inside_after(15 * 60, true)]
#[case::a_second_too_old(15 * 60 + 1, false)]
#[case::a_second_too_new(-(15 * 60 + 1), false)]
#[case::an_hour_old(3600, false)]
fn the_date_must_be_within_fifteen_minutes_of_now(#[case] now_minus_date: i64, #[case] ok: bool) {
    let signed_at = at(SIGNED_AT);
    let now = if now_minus_date >= 0 {
        signed_at + Duration::from_secs(now_minus_date.unsigned_abs())
    } else {
        signed_at - Duration::from_secs(now_minus_date.unsigned_abs())
    };
    let verified = Signed::post(&[]).verify_with(CCI_SK, now);
    if ok {
        assert_eq!(verified.as_deref(), Ok(CCI_AK));
    } else {
        let err = verified.unwrap_err();
        assert!(
            matches!(err, SigningError::DateOutsideWindow { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("15 minutes"), "{err}");
    }
}

#[test]
fn a_signature_without_x_sdk_date_among_its_signed_headers_is_refused() {
    // Signed over Host alone: what a client that forgot the date would send.
    let headers = [("Host", "h"), ("X-Sdk-Date", SIGNED_AT)];
    let request = Request {
        method: "GET",
        path: "/",
        query: "",
        headers: &headers,
        body: b"",
    };
    let credentials = Credentials::new(CCI_AK, CCI_SK).unwrap();
    let canonical = canonical_request(&request, &["host"]).unwrap();
    let authorization = format!(
        "SDK-HMAC-SHA256 Access={CCI_AK}, SignedHeaders=host, Signature={}",
        signature(&credentials, &string_to_sign(SIGNED_AT, &canonical))
    );
    let headers = [
        headers[0],
        headers[1],
        ("Authorization", authorization.as_str()),
    ];
    let err = verify(
        &Request {
            headers: &headers,
            ..request
        },
        at(SIGNED_AT),
        |_| Some(&credentials),
    )
    .unwrap_err();
    assert_eq!(
        err,
        SigningError::UnsignedHeader {
            header: "x-sdk-date",
            signed: "host".into()
        }
    );
}

#[test]
fn a_signed_header_missing_from_the_request_is_refused_naming_it() {
    let err = Signed::post(&[])
        .without("Content-Type")
        .verify()
        .unwrap_err();
    assert_eq!(
        err,
        SigningError::MissingSignedHeader {
            header: "content-type".into()
        }
    );
    assert!(err.to_string().contains("content-type"), "{err}");
}

#[test]
fn a_signed_header_changed_after_signing_is_refused() {
    let err = Signed::post(&[])
        .set("Host", "elsewhere:8443")
        .verify()
        .unwrap_err();
    assert_eq!(err, SigningError::WrongSignature);
}

#[test]
fn a_body_changed_after_signing_is_refused() {
    let mut request = Signed::post(&[]);
    request.body = br#"{"metadata":{"name":"bursting-c2"}}"#.to_vec();
    assert_eq!(request.verify(), Err(SigningError::WrongSignature));
}

#[test]
fn a_body_that_is_not_the_declared_one_is_refused_naming_both_hashes() {
    let declared = sha256_hex(br#"{"metadata":{"name":"bursting-c1"}}"#);
    let mut request = Signed::post(&[("X-Sdk-Content-Sha256", &declared)]);
    assert_eq!(request.verify().as_deref(), Ok(CCI_AK));
    request.body = b"{}".to_vec();
    let err = request.verify().unwrap_err();
    assert_eq!(
        err,
        SigningError::BodyHashMismatch {
            declared,
            actual: sha256_hex(b"{}")
        }
    );
}

#[test]
fn an_unsigned_payload_leaves_the_body_out_of_the_signature() {
    let mut request = Signed::post(&[("X-Sdk-Content-Sha256", "UNSIGNED-PAYLOAD")]);
    request.body = b"anything".to_vec();
    assert_eq!(request.verify().as_deref(), Ok(CCI_AK));
}

#[test]
fn a_date_changed_after_signing_is_refused() {
    let err = Signed::post(&[])
        .set("X-Sdk-Date", "20260102T030406Z")
        .verify()
        .unwrap_err();
    assert_eq!(err, SigningError::WrongSignature);
}

#[test]
fn a_request_without_an_authorization_header_is_malformed() {
    let err = Signed::post(&[])
        .without("Authorization")
        .verify()
        .unwrap_err();
    assert!(matches!(err, SigningError::Malformed { .. }), "{err:?}");
}

#[test]
fn signing_replaces_a_stale_date_and_authorization() {
    let headers = [
        GUIDE_HEADERS[0],
        GUIDE_HEADERS[1],
        ("X-Sdk-Date", "20000101T000000Z"),
        ("Authorization", "stale"),
    ];
    let signed = sign(
        &guide_credentials(),
        &guide_request(&headers),
        SdkDate::parse(GUIDE_DATE).unwrap(),
    );
    assert_eq!(signed.authorization, GUIDE_AUTHORIZATION);
}
