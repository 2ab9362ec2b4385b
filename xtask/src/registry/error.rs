//! A registry failure as a value: where (registry, repository, step) and what, classified from
//! the error's type and causes (HTTP status, connection, TLS), never from its message text.

use std::error::Error;
use std::fmt;

use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_spec::image::Digest;

use super::auth::CredentialSource;
use super::name::{Reference, Tag};
use crate::term::short_digest;

/// A step of talking to a registry, as errors and retry notices name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Login,
    CheckBlob(Digest),
    UploadBlob(Digest),
    PutManifest(Reference),
    ListTags,
    GetManifest(Reference),
    GetBlob(Digest),
    ListReferrers(Digest),
    /// Comparing an exact-version tag with what the registry has under it.
    CheckVersion(Tag),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Login => write!(f, "logging in"),
            Step::CheckBlob(d) => write!(f, "checking blob {}", short_digest(d)),
            Step::UploadBlob(d) => write!(f, "uploading blob {}", short_digest(d)),
            Step::PutManifest(Reference::Digest(d)) => {
                write!(f, "putting manifest {}", short_digest(d))
            }
            Step::PutManifest(Reference::Tag(t)) => write!(f, "putting manifest {t}"),
            Step::ListTags => write!(f, "listing tags"),
            Step::GetManifest(Reference::Digest(d)) => {
                write!(f, "getting manifest {}", short_digest(d))
            }
            Step::GetManifest(Reference::Tag(t)) => write!(f, "getting manifest {t}"),
            Step::CheckVersion(t) => write!(f, "checking version tag {t}"),
            Step::GetBlob(d) => write!(f, "getting blob {}", short_digest(d)),
            Step::ListReferrers(d) => write!(f, "listing referrers of {}", short_digest(d)),
        }
    }
}

/// What kind of failure, as far as the user and the retry loop care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// 401, and no credentials were found anywhere.
    CredentialsMissing,
    /// 401 with the credentials from this source.
    CredentialsRejected(CredentialSource),
    /// 403 with the credentials from this source.
    Denied(CredentialSource),
    /// 404: the repository (or the registry's API under that path) does not exist.
    UnknownRepository,
    /// 400 to a plain-HTTP request: what a TLS server answers to plain HTTP.
    PlainHttpRefused,
    /// 5xx or 429.
    ServerFailing(u16),
    /// The TLS handshake failed (certificate, or a TLS client talking to a plain-HTTP server).
    Tls,
    /// No connection, or it broke or timed out before an answer.
    Unreachable,
    /// An exact-version tag already points at `published`, and the push would move it to
    /// `pushed`: published versions never change.
    VersionPublished { published: Digest, pushed: Digest },
    /// Anything else: the detail says what.
    Other,
}

impl ErrorKind {
    /// Classifies an oci-client error. `plain_http`: whether the request went without TLS;
    /// `source`: where the credentials came from.
    pub fn of(err: &OciDistributionError, plain_http: bool, source: &CredentialSource) -> Self {
        match status_of(err) {
            Some(401) if *source == CredentialSource::Anonymous => ErrorKind::CredentialsMissing,
            Some(401) => ErrorKind::CredentialsRejected(source.clone()),
            Some(403) => ErrorKind::Denied(source.clone()),
            Some(404) => ErrorKind::UnknownRepository,
            Some(400) if plain_http => ErrorKind::PlainHttpRefused,
            Some(code) if code >= 500 || code == 429 => ErrorKind::ServerFailing(code),
            Some(_) => ErrorKind::Other,
            None if tls_error(err).is_some() => ErrorKind::Tls,
            None if is_connection(err) => ErrorKind::Unreachable,
            None => ErrorKind::Other,
        }
    }
}

/// A registry step that failed for good.
#[derive(Debug, Clone)]
pub struct RegistryError {
    pub registry: String,
    pub repository: String,
    pub step: Step,
    pub kind: ErrorKind,
    /// The underlying error and its causes on one line, with any password scrubbed.
    pub detail: String,
    /// How many times the step was tried.
    pub attempts: u32,
}

impl RegistryError {
    /// Worth another try: the network or an overloaded registry, not a refusal or a TLS mismatch.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::ServerFailing(_) | ErrorKind::Unreachable
        )
    }
}

/// One sentence: registry, repository, step, what it means and what to do, then the detail.
impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let repo = &self.repository;
        let tries = if self.attempts > 1 {
            format!(" after {} tries", self.attempts)
        } else {
            String::new()
        };
        let what = match &self.kind {
            ErrorKind::CredentialsMissing => {
                "the registry requires credentials (401 Unauthorized) and none were found: use \
                 --username/--password-stdin, REGISTRY_USERNAME/REGISTRY_PASSWORD or docker login"
                    .to_owned()
            }
            ErrorKind::CredentialsRejected(source) => format!(
                "the registry rejected the credentials (401 Unauthorized; credentials from \
                 {source})"
            ),
            ErrorKind::Denied(source) => format!(
                "access to {repo} denied (403 Forbidden; credentials from {source}): the account \
                 may not push there"
            ),
            ErrorKind::UnknownRepository => format!("unknown repository {repo} (404 Not Found)"),
            ErrorKind::PlainHttpRefused => "the registry refused a plain-HTTP request (400 Bad \
                                            Request): if it serves HTTPS, pass --ca-cert FILE"
                .to_owned(),
            ErrorKind::ServerFailing(code) => {
                format!("the registry kept failing (HTTP {code}){tries}")
            }
            ErrorKind::Tls => "TLS handshake failed: trust the registry's CA with --ca-cert \
                               FILE, or use --insecure for a plain-HTTP registry"
                .to_owned(),
            ErrorKind::Unreachable => format!("unreachable{tries}"),
            ErrorKind::VersionPublished { published, pushed } => {
                let tag = match &self.step {
                    Step::CheckVersion(tag) => tag.to_string(),
                    _ => "the version".to_owned(),
                };
                format!(
                    "{tag} is a published version: the registry has {tag} at {published}, this \
                     push is {pushed}; a published version never points at other bytes, so \
                     release these under a new version"
                )
            }
            ErrorKind::Other => String::new(),
        };
        write!(
            f,
            "registry {}, repository {repo}: {}: ",
            self.registry, self.step
        )?;
        match (what.is_empty(), self.detail.is_empty()) {
            (true, _) => write!(f, "{}", self.detail),
            (false, true) => write!(f, "{what}"),
            (false, false) => write!(f, "{what}: {}", self.detail),
        }
    }
}

impl Error for RegistryError {}

/// The HTTP status behind an oci-client error, wherever the crate put it.
fn status_of(err: &OciDistributionError) -> Option<u16> {
    match err {
        OciDistributionError::ServerError { code, .. } => Some(*code),
        OciDistributionError::UnauthorizedError { .. } => Some(401),
        OciDistributionError::AuthenticationFailure(_) => Some(401),
        OciDistributionError::RequestError(e) => e.status().map(|s| s.as_u16()),
        OciDistributionError::RegistryError { envelope, .. } => {
            envelope.errors.iter().find_map(|e| match e.code {
                OciErrorCode::Unauthorized => Some(401),
                OciErrorCode::Denied => Some(403),
                OciErrorCode::NameUnknown | OciErrorCode::NotFound => Some(404),
                OciErrorCode::Toomanyrequests => Some(429),
                _ => None,
            })
        }
        _ => None,
    }
}

/// A 404 for what was asked (manifest, blob, or the repository itself): an answer, not a failure,
/// for reads that ask whether something exists.
pub(super) fn is_not_found(err: &OciDistributionError) -> bool {
    match err {
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
            matches!(
                e.code,
                OciErrorCode::ManifestUnknown
                    | OciErrorCode::BlobUnknown
                    | OciErrorCode::NameUnknown
                    | OciErrorCode::NotFound
            )
        }),
        _ => status_of(err) == Some(404),
    }
}

/// No answer: the connection failed, broke or timed out.
fn is_connection(err: &OciDistributionError) -> bool {
    match err {
        OciDistributionError::RequestError(e) => {
            e.status().is_none()
                && (e.is_connect() || e.is_timeout() || e.is_request() || e.is_body())
        }
        OciDistributionError::IoError(_) => true,
        _ => false,
    }
}

/// The rustls error among the causes of a failed request: a certificate the client does not
/// trust, or TLS records that are not TLS (a plain-HTTP server).
fn tls_error(err: &OciDistributionError) -> Option<&rustls::Error> {
    // oci-client's wrappers are `#[error(transparent)]`, which also hides the wrapped error from
    // `source()`: start from it.
    let first: &(dyn Error + 'static) = match err {
        OciDistributionError::RequestError(e) => e,
        OciDistributionError::IoError(e) => e,
        _ => return None,
    };
    causes(first).find_map(|e| e.downcast_ref::<rustls::Error>())
}

/// `err` and its causes. An `io::Error`'s `source()` skips the error it wraps (its Display shows
/// that one), and the TLS stack wraps rustls errors in io::Errors, twice: step into it instead.
fn causes<'a>(err: &'a (dyn Error + 'static)) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(err), |&e: &&'a (dyn Error + 'static)| match e
        .downcast_ref::<std::io::Error>()
    {
        Some(io) => io.get_ref().map(|inner| inner as &(dyn Error + 'static)),
        None => e.source(),
    })
}

/// `message` with every occurrence of `secret` replaced by `***`.
pub(super) fn scrub(message: &str, secret: Option<&str>) -> String {
    match secret {
        Some(s) if !s.is_empty() => message.replace(s, "***"),
        _ => message.to_owned(),
    }
}

/// An error and all its causes on one line.
pub(super) fn one_line(err: &(dyn Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_client::errors::{OciEnvelope, OciError};

    fn kind(err: &OciDistributionError) -> ErrorKind {
        ErrorKind::of(err, true, &CredentialSource::Environment)
    }

    fn error(kind: ErrorKind, attempts: u32) -> RegistryError {
        RegistryError {
            registry: "127.0.0.1:5000".into(),
            repository: "team/app".into(),
            step: Step::Login,
            kind,
            detail: "the cause".into(),
            attempts,
        }
    }

    #[test]
    fn statuses_are_classified_wherever_oci_client_put_them() {
        let server = |code| OciDistributionError::ServerError {
            code,
            url: "u".into(),
            message: "m".into(),
        };
        assert_eq!(kind(&server(503)), ErrorKind::ServerFailing(503));
        assert_eq!(kind(&server(429)), ErrorKind::ServerFailing(429));
        assert_eq!(kind(&server(404)), ErrorKind::UnknownRepository);
        assert_eq!(kind(&server(400)), ErrorKind::PlainHttpRefused);
        assert_eq!(
            ErrorKind::of(&server(400), false, &CredentialSource::Flags),
            ErrorKind::Other
        );
        let unauthorized = OciDistributionError::UnauthorizedError { url: "u".into() };
        assert_eq!(
            kind(&unauthorized),
            ErrorKind::CredentialsRejected(CredentialSource::Environment)
        );
        assert_eq!(
            ErrorKind::of(&unauthorized, false, &CredentialSource::Anonymous),
            ErrorKind::CredentialsMissing
        );
        let envelope = |code| OciDistributionError::RegistryError {
            envelope: OciEnvelope {
                errors: vec![OciError {
                    code,
                    message: String::new(),
                    detail: serde_json::Value::Null,
                }],
            },
            url: "u".into(),
        };
        assert_eq!(
            kind(&envelope(OciErrorCode::Denied)),
            ErrorKind::Denied(CredentialSource::Environment)
        );
        assert_eq!(
            kind(&envelope(OciErrorCode::DigestInvalid)),
            ErrorKind::Other
        );
    }

    #[test]
    fn tls_failures_are_found_in_the_causes_and_are_not_retried() {
        use rustls::{CertificateError, Error as Tls};
        let io = |e: Tls| {
            OciDistributionError::IoError(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        };
        let cert = io(Tls::InvalidCertificate(CertificateError::UnknownIssuer));
        assert_eq!(kind(&cert), ErrorKind::Tls);
        assert!(!error(kind(&cert), 1).is_transient());
        // As hyper-rustls hands it on: tokio-rustls' io::Error inside another io::Error.
        let wrapped = OciDistributionError::IoError(std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            Tls::InvalidCertificate(CertificateError::UnknownIssuer),
        )));
        assert_eq!(kind(&wrapped), ErrorKind::Tls);
        // A TLS client reading an HTTP answer: its bytes are not TLS records.
        let plain = io(Tls::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType,
        ));
        assert_eq!(kind(&plain), ErrorKind::Tls);
        // Messages do not count: an error that merely mentions TLS is a connection error.
        let refused = OciDistributionError::IoError(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "tls certificate",
        ));
        assert_eq!(kind(&refused), ErrorKind::Unreachable);
        assert!(error(kind(&refused), 1).is_transient());
    }

    #[test]
    fn passwords_are_scrubbed_from_details() {
        let echoed = "invalid credentials pusher:s3cret-pw for s3cret-pw";
        assert_eq!(
            scrub(echoed, Some("s3cret-pw")),
            "invalid credentials pusher:*** for ***"
        );
        assert_eq!(scrub(echoed, None), echoed);
        assert_eq!(scrub(echoed, Some("")), echoed);
    }

    #[test]
    fn messages_name_the_place_the_step_and_the_fix() {
        assert_eq!(
            error(ErrorKind::Unreachable, 5).to_string(),
            "registry 127.0.0.1:5000, repository team/app: logging in: unreachable after 5 \
             tries: the cause"
        );
        assert_eq!(
            error(ErrorKind::Other, 1).to_string(),
            "registry 127.0.0.1:5000, repository team/app: logging in: the cause"
        );
        let denied = error(ErrorKind::Denied(CredentialSource::Flags), 1).to_string();
        assert!(
            denied.contains(
                "access to team/app denied (403 Forbidden; credentials from \
                             --username/--password-stdin)"
            ),
            "{denied}"
        );
        let digest: Digest = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
        assert_eq!(
            Step::UploadBlob(digest.clone()).to_string(),
            "uploading blob sha256:abababababab"
        );
        let tag = Reference::Tag("1.2.3".parse().unwrap());
        assert_eq!(Step::PutManifest(tag).to_string(), "putting manifest 1.2.3");
        let (a, b) = (
            digest.clone(),
            format!("sha256:{}", "cd".repeat(32)).parse().unwrap(),
        );
        let moved = RegistryError {
            step: Step::CheckVersion("1.2.3".parse().unwrap()),
            detail: String::new(),
            ..error(
                ErrorKind::VersionPublished {
                    published: a.clone(),
                    pushed: b,
                },
                1,
            )
        };
        assert!(!moved.is_transient());
        assert_eq!(
            moved.to_string(),
            format!(
                "registry 127.0.0.1:5000, repository team/app: checking version tag 1.2.3: 1.2.3 \
                 is a published version: the registry has 1.2.3 at {a}, this push is sha256:{}; a \
                 published version never points at other bytes, so release these under a new \
                 version",
                "cd".repeat(32)
            )
        );
        assert!(error(ErrorKind::ServerFailing(502), 1).is_transient());
        assert!(!error(ErrorKind::UnknownRepository, 1).is_transient());
    }
}
