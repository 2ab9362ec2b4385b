//! The connection to one repository: oci-client set up with the scheme, CA and credentials the
//! flags and environment give, each request retried while its failure is transient.
//!
//! Everything on the wire goes through oci-client. Passwords stay inside it and are scrubbed
//! from every error this module returns.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};
use oci_spec::image::{Digest, ImageIndex, MediaType};

use super::auth::{self, CredentialSource, RegistryArgs};
use super::error::{ErrorKind, RegistryError, Step, is_not_found, one_line, scrub};
use super::name::{Reference, RepositoryName, Tag, is_loopback};
use super::progress::{Event, Progress, Quiet};

/// Plain HTTP only where asked (`--insecure`) or where it cannot leave the machine (loopback,
/// unless a CA certificate says the loopback registry speaks TLS).
pub fn use_plain_http(registry: &str, insecure: bool, ca_cert: bool) -> bool {
    insecure || (is_loopback(registry) && !ca_cert)
}

/// The manifest kinds [`Repo::manifest`] asks for: OCI and Docker, single images and indexes.
const MANIFEST_TYPES: [&str; 4] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// A manifest as the registry holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The digest of `bytes` (checked against the registry's `Docker-Content-Digest`).
    pub digest: Digest,
    pub media_type: MediaType,
    pub bytes: bytes::Bytes,
}

/// An open connection to one repository of one registry.
pub struct Repo {
    client: Client,
    auth: RegistryAuth,
    source: CredentialSource,
    /// Scrubbed from every error message, in case a registry echoes it back.
    secret: Option<String>,
    plain_http: bool,
    name: RepositoryName,
    /// The registry calls are async (oci-client); the tasks are not.
    runtime: tokio::runtime::Runtime,
    /// How often to try a step before giving up, and the first pause between tries.
    pub attempts: u32,
    pub first_backoff: Duration,
    /// Tags asked for per request of the tag list: a page size every registry accepts (some
    /// refuse larger ones; one that sends fewer is asked again from the last tag it sent).
    pub tags_per_page: usize,
}

impl Repo {
    /// Resolves credentials and TLS settings for the repository `name`. Sends nothing yet.
    pub fn open(args: &RegistryArgs, name: &RepositoryName) -> Result<Repo> {
        let registry = name.registry();
        // oci-client is built without a default crypto provider: ring is the one we ship.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (creds, source) = auth::credentials(args, registry)?;
        let plain = use_plain_http(registry, args.insecure, args.ca_cert.is_some());
        let mut config = ClientConfig {
            protocol: if plain {
                ClientProtocol::HttpsExcept(vec![registry.to_owned()])
            } else {
                ClientProtocol::Https
            },
            // One request per blob (POST then PUT) instead of 4 MiB PATCHes: fewer round trips.
            use_monolithic_push: true,
            // Bounded waits, so an unreachable or silent registry fails in seconds, not minutes.
            connect_timeout: Some(Duration::from_secs(5)),
            read_timeout: Some(Duration::from_secs(60)),
            ..ClientConfig::default()
        };
        if let Some(ca) = &args.ca_cert {
            let data =
                std::fs::read(ca).with_context(|| format!("reading --ca-cert {}", ca.display()))?;
            if !String::from_utf8_lossy(&data).contains("-----BEGIN CERTIFICATE-----") {
                bail!("--ca-cert {}: not a PEM certificate", ca.display());
            }
            config.extra_root_certificates.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            });
        }
        // `Client::new` would fall back to a default client on a bad setting; we want the error.
        let client = Client::try_from(config)
            .map_err(|e| anyhow::anyhow!("setting up the client for {registry}: {e}"))?;
        let secret = creds.as_ref().map(|c| c.password.clone());
        let auth = match creds {
            Some(c) => RegistryAuth::Basic(c.username, c.password),
            None => RegistryAuth::Anonymous,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime for registry requests")?;
        Ok(Repo {
            client,
            auth,
            source,
            secret,
            plain_http: plain,
            name: name.clone(),
            runtime,
            attempts: 5,
            first_backoff: Duration::from_millis(250),
            tags_per_page: 100,
        })
    }

    pub fn name(&self) -> &RepositoryName {
        &self.name
    }

    /// Runs registry calls to completion from the tasks' synchronous code.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    fn reference(&self, reference: &Reference) -> oci_client::Reference {
        let (r, p) = (
            self.name.registry().to_owned(),
            self.name.repository().to_owned(),
        );
        match reference {
            Reference::Tag(t) => oci_client::Reference::with_tag(r, p, t.to_string()),
            Reference::Digest(d) => oci_client::Reference::with_digest(r, p, d.to_string()),
        }
    }

    /// Logs in for pushing (a bearer token from the registry's realm, or basic credentials) and
    /// checks that the registry answers at all.
    pub(super) async fn login(&self, progress: &dyn Progress) -> Result<(), RegistryError> {
        let reference = oci_client::Reference::with_tag(
            self.name.registry().to_owned(),
            self.name.repository().to_owned(),
            "latest".to_owned(),
        );
        self.retry(Step::Login, progress, || async {
            self.client
                .auth(&reference, &self.auth, RegistryOperation::Push)
                .await
                .map(|_| ())
        })
        .await
    }

    /// Whether the registry already has the blob `digest` in this repository.
    pub(super) async fn blob_exists(
        &self,
        digest: &Digest,
        progress: &dyn Progress,
    ) -> Result<bool, RegistryError> {
        let reference = self.reference(&Reference::Digest(digest.clone()));
        let step = Step::CheckBlob(digest.clone());
        let digest = digest.to_string();
        self.retry(step, progress, || {
            self.client.blob_exists(&reference, &digest)
        })
        .await
    }

    /// Uploads one blob, calling `on_sent` with each chunk's size as the request body takes it.
    pub(super) async fn push_blob(
        &self,
        digest: &Digest,
        data: &bytes::Bytes,
        on_sent: Arc<dyn Fn(u64) + Send + Sync>,
        progress: &dyn Progress,
    ) -> Result<(), RegistryError> {
        const CHUNK: usize = 1 << 20;
        let reference = self.reference(&Reference::Digest(digest.clone()));
        let step = Step::UploadBlob(digest.clone());
        let digest = digest.to_string();
        let size = data.len() as u64;
        self.retry(step, progress, || {
            // A fresh stream per try: a retry starts a fresh upload session.
            let chunks: Vec<bytes::Bytes> = (0..data.len())
                .step_by(CHUNK)
                .map(|at| data.slice(at..(at + CHUNK).min(data.len())))
                .collect();
            let on_sent = on_sent.clone();
            let stream = futures_util::stream::iter(chunks).map(move |chunk| {
                on_sent(chunk.len() as u64);
                Ok::<_, OciDistributionError>(chunk)
            });
            let (reference, digest) = (&reference, &digest);
            async move {
                self.client
                    .push_blob_stream(reference, stream, digest, Some(size))
                    .await
                    .map(|_| ())
            }
        })
        .await
    }

    /// Puts a manifest (or index) under `reference` with exactly these bytes, so its digest in
    /// the registry is the one computed locally.
    pub(super) async fn push_manifest(
        &self,
        reference: &Reference,
        body: &bytes::Bytes,
        media_type: &MediaType,
        progress: &dyn Progress,
    ) -> Result<(), RegistryError> {
        let step = Step::PutManifest(reference.clone());
        let media_type = media_type.to_string();
        // Visible ASCII is exactly what a header value accepts, so the parse below cannot fail.
        if media_type.is_empty() || !media_type.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            let detail = format!("media type `{media_type}` is not a valid header value");
            return Err(self.error(step, ErrorKind::Other, &detail, 1));
        }
        let reference = self.reference(reference);
        self.retry(step, progress, || {
            self.client.push_manifest_raw(
                &reference,
                body.clone(),
                media_type.parse().expect("checked"),
            )
        })
        .await
        .map(|_| ())
    }

    /// Every tag of the repository, following the registry's pagination; none when the
    /// repository does not exist yet.
    pub async fn tags(&self, progress: &dyn Progress) -> Result<Vec<Tag>, RegistryError> {
        let reference = self.reference(&Reference::Tag("latest".parse().expect("a valid tag")));
        let mut tags: Vec<String> = Vec::new();
        loop {
            let last = tags.last().cloned();
            let page = self
                .retry(Step::ListTags, progress, || async {
                    match self
                        .client
                        .list_tags(
                            &reference,
                            &self.auth,
                            Some(self.tags_per_page),
                            last.as_deref(),
                        )
                        .await
                    {
                        Ok(page) => Ok(page.tags),
                        Err(e) if is_not_found(&e) => Ok(Vec::new()),
                        Err(e) => Err(e),
                    }
                })
                .await?;
            // Pages come in lexical order after `last`. Stop at the first page that brings
            // nothing new: the end, or a registry that ignores `last` and repeats itself.
            let before = tags.len();
            for tag in page {
                if !tags.contains(&tag) {
                    tags.push(tag);
                }
            }
            if tags.len() == before {
                break;
            }
        }
        let mut parsed = Vec::with_capacity(tags.len());
        for tag in &tags {
            match tag.parse() {
                Ok(tag) => parsed.push(tag),
                Err(e) => {
                    return Err(self.error(
                        Step::ListTags,
                        ErrorKind::Other,
                        &format!("the registry listed {e}"),
                        1,
                    ));
                }
            }
        }
        Ok(parsed)
    }

    /// The manifest under `reference` (a GET: its digest, media type and bytes), or `None` when
    /// the registry has none there.
    pub async fn manifest(
        &self,
        reference: &Reference,
        progress: &dyn Progress,
    ) -> Result<Option<Fetched>, RegistryError> {
        let step = Step::GetManifest(reference.clone());
        let oci_reference = self.reference(reference);
        let fetched = self
            .retry(step.clone(), progress, || async {
                match self
                    .client
                    .pull_manifest_raw(&oci_reference, &self.auth, &MANIFEST_TYPES)
                    .await
                {
                    Ok(got) => Ok(Some(got)),
                    Err(e) if is_not_found(&e) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .await?;
        let Some((bytes, digest)) = fetched else {
            return Ok(None);
        };
        let digest = digest.parse().map_err(|e| {
            self.error(
                step.clone(),
                ErrorKind::Other,
                &format!("digest `{digest}`: {e}"),
                1,
            )
        })?;
        let media_type =
            media_type_of(&bytes).map_err(|e| self.error(step, ErrorKind::Other, &e, 1))?;
        Ok(Some(Fetched {
            digest,
            media_type,
            bytes,
        }))
    }

    /// The blob `digest`, checked against its digest as it arrives.
    pub fn blob(&self, digest: &Digest) -> Result<bytes::Bytes> {
        let target = self.reference(&Reference::Digest(digest.clone()));
        let digest_text = digest.to_string();
        let bytes = self.block_on(self.retry(Step::GetBlob(digest.clone()), &Quiet, || async {
            let mut out = Vec::new();
            self.client
                .store_auth_if_needed(target.resolve_registry(), &self.auth)
                .await;
            self.client
                .pull_blob(&target, digest_text.as_str(), &mut out)
                .await
                .map(|()| out)
        }))?;
        Ok(bytes.into())
    }

    /// The manifests whose `subject` is `digest`: from the referrers API where the registry has
    /// one, else from the referrers tag schema (`sha256-<hex>`), as the distribution spec says.
    pub fn referrers(&self, digest: &Digest) -> Result<ImageIndex> {
        let step = Step::ListReferrers(digest.clone());
        let target = self.reference(&Reference::Digest(digest.clone()));
        let index = self.block_on(self.retry(step.clone(), &Quiet, || async {
            self.client
                .store_auth_if_needed(target.resolve_registry(), &self.auth)
                .await;
            self.client.pull_referrers(&target, None).await
        }))?;
        let index = serde_json::to_value(&index)
            .and_then(serde_json::from_value)
            .map_err(|e| {
                self.error(
                    step,
                    ErrorKind::Other,
                    &format!("the referrers index is not an OCI index: {e}"),
                    1,
                )
            })?;
        Ok(index)
    }

    /// Runs `op` until it succeeds, fails for good, or runs out of tries (with doubling pauses).
    async fn retry<T, F, Fut>(
        &self,
        step: Step,
        progress: &dyn Progress,
        mut op: F,
    ) -> Result<T, RegistryError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = oci_client::errors::Result<T>>,
    {
        let mut pause = self.first_backoff;
        let mut attempts = 1;
        loop {
            let err = match op().await {
                Ok(v) => return Ok(v),
                Err(err) => err,
            };
            let kind = ErrorKind::of(&err, self.plain_http, &self.source);
            let error = self.error(step.clone(), kind, &one_line(&err), attempts);
            if attempts >= self.attempts || !error.is_transient() {
                return Err(error);
            }
            progress.report(Event::Retrying {
                error: &error,
                pause,
            });
            tokio::time::sleep(pause).await;
            pause *= 2;
            attempts += 1;
        }
    }

    /// `step` failed on this repository; the password is scrubbed from `detail`, in case a
    /// registry or a library echoed it back.
    fn error(&self, step: Step, kind: ErrorKind, detail: &str, attempts: u32) -> RegistryError {
        RegistryError {
            registry: self.name.registry().to_owned(),
            repository: self.name.repository().to_owned(),
            step,
            kind,
            detail: scrub(detail, self.secret.as_deref()),
            attempts,
        }
    }
}

/// A manifest's media type from its own `mediaType` field (oci-client does not hand on the
/// `Content-Type`); a manifest that omits it (OCI allows that) is an index if it lists
/// manifests, else an image manifest.
fn media_type_of(bytes: &[u8]) -> Result<MediaType, String> {
    let json: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("the manifest is not JSON: {e}"))?;
    Ok(match json.get("mediaType").and_then(|m| m.as_str()) {
        Some(m) => MediaType::from(m),
        None if json.get("manifests").is_some() => MediaType::ImageIndex,
        None => MediaType::ImageManifest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_come_from_the_manifest() {
        let docker = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}"#;
        assert_eq!(
            media_type_of(docker).unwrap().to_string(),
            "application/vnd.docker.distribution.manifest.v2+json"
        );
        assert_eq!(
            media_type_of(br#"{"schemaVersion":2,"manifests":[]}"#).unwrap(),
            MediaType::ImageIndex
        );
        assert_eq!(
            media_type_of(br#"{"schemaVersion":2,"layers":[]}"#).unwrap(),
            MediaType::ImageManifest
        );
        assert!(media_type_of(b"<html>").unwrap_err().contains("not JSON"));
    }

    #[test]
    fn plain_http_only_for_loopback_or_when_asked() {
        assert!(use_plain_http("127.0.0.1:5000", false, false));
        assert!(use_plain_http("localhost:5000", false, false));
        assert!(use_plain_http("[::1]:5000", false, false));
        assert!(!use_plain_http("127.0.0.1:5000", false, true));
        assert!(!use_plain_http("ghcr.io", false, false));
        assert!(!use_plain_http("10.0.0.1:5000", false, false));
        assert!(use_plain_http("registry.lan:5000", true, false));
    }
}
