//! Registry access shared by `image push` and `chart push`: credentials, TLS, retries (oci-client).
