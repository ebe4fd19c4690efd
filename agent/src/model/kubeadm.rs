//! kubeadm's join secrets and pins, as k8s.io/cluster-bootstrap defines them: a bootstrap token
//! is `<id>.<secret>` (`[a-z0-9]{6}.[a-z0-9]{16}`); a CA pin is `sha256:<hex>` of the DER
//! SubjectPublicKeyInfo of the CA certificate.

use sha2::Digest as _;

/// Bootstrap token length: id.
const TOKEN_ID_LEN: usize = 6;
/// Bootstrap token length: secret.
const TOKEN_SECRET_LEN: usize = 16;
/// The fix printed with every token problem.
pub const TOKEN_FIX: &str = "create a new token with `kubeadm token create` on a control-plane node and put it in spec.kubeadm.bootstrapToken";

/// A well-formed bootstrap token. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapToken {
    id: String,
    secret: String,
}

impl std::fmt::Debug for BootstrapToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BootstrapToken({}.** redacted **)", self.id)
    }
}

fn token_part(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

impl BootstrapToken {
    /// Parses `<id>.<secret>`. The error never contains the text (it is a secret).
    pub fn parse(text: &str) -> Result<BootstrapToken, MalformedToken> {
        let (id, secret) = text.split_once('.').ok_or(MalformedToken)?;
        if token_part(id, TOKEN_ID_LEN) && token_part(secret, TOKEN_SECRET_LEN) {
            Ok(BootstrapToken {
                id: id.to_owned(),
                secret: secret.to_owned(),
            })
        } else {
            Err(MalformedToken)
        }
    }

    /// The public token id (the `kid` and the suffix of `jws-kubeconfig-<id>`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The secret part, as the key of the HS256 signatures in `cluster-info` only.
    pub fn secret_key(&self) -> &[u8] {
        self.secret.as_bytes()
    }

    /// The whole token, for the bootstrap kubeconfig only.
    pub fn expose(&self) -> String {
        format!("{}.{}", self.id, self.secret)
    }
}

/// A bootstrap token that is not `[a-z0-9]{6}.[a-z0-9]{16}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "is not a bootstrap token: expected 6 lowercase letters or digits, a dot, then 16 lowercase letters or digits (like `07401b.f395accd246ae52d`, as `kubeadm token create` prints); the value is not shown because it is a secret"
)]
pub struct MalformedToken;

/// A CA pin: the SHA-256 of a certificate's DER SubjectPublicKeyInfo.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CaPin([u8; 32]);

impl std::fmt::Display for CaPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

impl std::fmt::Debug for CaPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CaPin({self})")
    }
}

/// A `caCertHashes` entry that is not `sha256:<64 hex digits>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "\"{0}\" is not a CA pin: expected `sha256:` and 64 hex digits, the SHA-256 of the CA certificate's DER public key (SubjectPublicKeyInfo), as `kubeadm token create --print-join-command` prints after --discovery-token-ca-cert-hash"
)]
pub struct MalformedPin(pub String);

impl CaPin {
    /// Parses `sha256:<hex>` (hex in either case, as kubeadm accepts it).
    pub fn parse(text: &str) -> Result<CaPin, MalformedPin> {
        let bad = || MalformedPin(text.to_owned());
        let (kind, digest) = text.split_once(':').ok_or_else(bad)?;
        if !kind.eq_ignore_ascii_case("sha256") || digest.len() != 64 {
            return Err(bad());
        }
        let bytes = hex::decode(digest).map_err(|_| bad())?;
        let array: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
        Ok(CaPin(array))
    }

    /// The pin of a DER certificate.
    pub fn of_certificate(der: &[u8]) -> Result<CaPin, String> {
        use x509_cert::der::{Decode as _, Encode as _};
        let cert = x509_cert::Certificate::from_der(der)
            .map_err(|e| format!("not an X.509 certificate ({e})"))?;
        let spki = cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| format!("its public key does not encode ({e})"))?;
        Ok(CaPin(sha2::Sha256::digest(&spki).into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef";

    fn token() -> BootstrapToken {
        BootstrapToken::parse(&format!("abcdef.{SECRET}")).unwrap()
    }

    #[test]
    fn tokens_parse_and_never_show_the_secret() {
        let t = token();
        assert_eq!(t.id(), "abcdef");
        assert!(!format!("{t:?}").contains(SECRET));
        for bad in [
            "",
            "abcdef",
            "abcdef.0123456789abcde",
            "ABCDEF.0123456789abcdef",
            "abcde.0123456789abcdefg",
            "abcdef:0123456789abcdef",
            "abcdef.0123456789abcdef.x",
        ] {
            let err = BootstrapToken::parse(bad).unwrap_err().to_string();
            assert!(bad.is_empty() || !err.contains(bad), "{err}");
        }
    }

    #[test]
    fn pins_parse() {
        let hex = "a".repeat(64);
        let pin = CaPin::parse(&format!("sha256:{hex}")).unwrap();
        assert_eq!(pin.to_string(), format!("sha256:{hex}"));
        assert_eq!(
            CaPin::parse(&format!("SHA256:{}", "A".repeat(64))).unwrap(),
            pin
        );
        for bad in [
            hex.clone(),
            format!("sha1:{hex}"),
            "sha256:abc".into(),
            format!("sha256:{}", "g".repeat(64)),
        ] {
            assert!(CaPin::parse(&bad).is_err(), "{bad}");
        }
    }
}
