//! User-data decoding, pure: bytes in, NodeConfig text payloads out.
//!
//! Order, as EC2 user data is written in practice: base64 when the whole payload is valid
//! base64; gzip when it starts with the gzip magic; MIME multipart, keeping only
//! `application/node.eks.aws` parts (each of which may itself be base64 or gzip); otherwise
//! the payload is YAML/JSON text holding one or more documents.

use std::io::Read;

use base64::Engine;

/// The MIME content type of a NodeConfig part.
pub const NODECONFIG_CONTENT_TYPE: &str = "application/node.eks.aws";
/// Nesting allowed for base64-in-gzip-in-MIME and so on.
const MAX_NESTING: usize = 8;
/// The most bytes decoding may produce in total (a gzip bomb stops here).
pub const MAX_DECODED_BYTES: usize = 16 * 1024 * 1024;
/// The most `multipart/*` Content-Type headers a MIME message may have (checked before the
/// MIME parser runs: it recurses into every nested multipart).
pub const MAX_MIME_MULTIPARTS: usize = 16;
/// The most parts a MIME message may have in all.
pub const MAX_MIME_PARTS: usize = 256;
/// The Content-Transfer-Encodings of RFC 2045.
const TRANSFER_ENCODINGS: [&str; 5] = ["7bit", "8bit", "binary", "base64", "quoted-printable"];
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// One text payload that holds NodeConfig documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// Where in the source it came from, e.g. `MIME part 2`; empty for the whole source.
    pub origin: String,
    /// The YAML/JSON text.
    pub text: String,
}

/// Why a payload could not be decoded. Always bad input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The gzip stream is corrupt or truncated.
    #[error(
        "{origin}gzip data is corrupt or truncated ({reason}); re-create it with `gzip -c file | base64 -w0`"
    )]
    Gzip {
        /// Where.
        origin: String,
        /// The decompressor's complaint.
        reason: String,
    },
    /// Decoding would exceed [`MAX_DECODED_BYTES`].
    #[error(
        "{origin}decoded user data exceeds {MAX_DECODED_BYTES} bytes; user data this large is not a NodeConfig"
    )]
    TooLarge {
        /// Where.
        origin: String,
    },
    /// Too many layers of encoding.
    #[error(
        "{origin}more than {MAX_NESTING} nested encodings (base64/gzip/MIME); flatten the user data"
    )]
    TooDeep {
        /// Where.
        origin: String,
    },
    /// A MIME message that cannot be parsed.
    #[error("{origin}MIME message cannot be parsed: {reason}")]
    Mime {
        /// Where.
        origin: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A NodeConfig payload that is not UTF-8.
    #[error(
        "{origin}NodeConfig text is not valid UTF-8 (invalid byte at offset {offset}); save the file as UTF-8"
    )]
    NotUtf8 {
        /// Where.
        origin: String,
        /// Byte offset of the first invalid sequence.
        offset: usize,
    },
}

/// How strictly non-NodeConfig content is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A config file: everything in it must be NodeConfig text.
    File,
    /// EC2 user data: shell scripts and cloud-config are someone else's and are skipped.
    UserData,
}

/// Decodes a source's bytes into NodeConfig text payloads.
pub fn decode(bytes: &[u8], mode: Mode) -> Result<Vec<Payload>, DecodeError> {
    let mut out = Vec::new();
    let mut budget = MAX_DECODED_BYTES;
    decode_into(bytes, mode, String::new(), 0, &mut budget, &mut out)?;
    Ok(out)
}

fn prefix(origin: &str) -> String {
    if origin.is_empty() {
        String::new()
    } else {
        format!("{origin}: ")
    }
}

fn decode_into(
    bytes: &[u8],
    mode: Mode,
    origin: String,
    depth: usize,
    budget: &mut usize,
    out: &mut Vec<Payload>,
) -> Result<(), DecodeError> {
    if depth > MAX_NESTING {
        return Err(DecodeError::TooDeep {
            origin: prefix(&origin),
        });
    }
    if let Some(decoded) = whole_base64(bytes) {
        charge(budget, decoded.len(), &origin)?;
        return decode_into(&decoded, mode, origin, depth + 1, budget, out);
    }
    if bytes.starts_with(&GZIP_MAGIC) {
        let inflated = gunzip(bytes, budget, &origin)?;
        return decode_into(&inflated, mode, origin, depth + 1, budget, out);
    }
    if looks_like_mime(bytes) {
        return decode_mime(bytes, origin, depth, budget, out);
    }
    let text = std::str::from_utf8(bytes).map_err(|e| DecodeError::NotUtf8 {
        origin: prefix(&origin),
        offset: e.valid_up_to(),
    })?;
    if mode == Mode::UserData && !is_nodeconfig_text(text) {
        tracing::debug!(origin = %origin, "user data is not a NodeConfig (script or cloud-config); skipped");
        return Ok(());
    }
    out.push(Payload {
        origin,
        text: text.to_owned(),
    });
    Ok(())
}

fn charge(budget: &mut usize, n: usize, origin: &str) -> Result<(), DecodeError> {
    *budget = budget.checked_sub(n).ok_or_else(|| DecodeError::TooLarge {
        origin: prefix(origin),
    })?;
    Ok(())
}

/// The decoded bytes when the whole payload (ignoring ASCII whitespace) is standard base64.
fn whole_base64(bytes: &[u8]) -> Option<Vec<u8>> {
    let compact: Vec<u8> = bytes
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if compact.is_empty() {
        return None;
    }
    base64::engine::general_purpose::STANDARD
        .decode(&compact)
        .ok()
}

fn gunzip(bytes: &[u8], budget: &mut usize, origin: &str) -> Result<Vec<u8>, DecodeError> {
    let mut decoder = flate2::read::GzDecoder::new(bytes);
    let mut out = Vec::new();
    // Read one byte past the budget so that an over-large stream is detected, not truncated.
    let limit = u64::try_from(*budget).unwrap_or(u64::MAX).saturating_add(1);
    (&mut decoder)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| DecodeError::Gzip {
            origin: prefix(origin),
            reason: e.to_string(),
        })?;
    charge(budget, out.len(), origin)?;
    Ok(out)
}

/// A MIME message starts with RFC 5322 headers, one of which declares a multipart type or
/// the MIME version.
fn looks_like_mime(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(4096)];
    let Ok(head) =
        std::str::from_utf8(head).or_else(|e| std::str::from_utf8(&head[..e.valid_up_to()]))
    else {
        return false;
    };
    let mut lines = head.lines();
    let Some(first) = lines.next() else {
        return false;
    };
    let header_name = |l: &str| {
        l.split_once(':')
            .map(|(n, _)| n.trim().to_ascii_lowercase())
    };
    let is_mime_header = |l: &str| {
        matches!(
            header_name(l).as_deref(),
            Some("mime-version") | Some("content-type")
        )
    };
    if !is_mime_header(first) {
        return false;
    }
    true
}

fn decode_mime(
    bytes: &[u8],
    origin: String,
    depth: usize,
    budget: &mut usize,
    out: &mut Vec<Payload>,
) -> Result<(), DecodeError> {
    let multiparts = bytes
        .split(|&b| b == b'\n')
        .filter(|line| {
            line.len() >= 13
                && line[..13].eq_ignore_ascii_case(b"content-type:")
                && line[13..]
                    .trim_ascii_start()
                    .get(..10)
                    .is_some_and(|t| t.eq_ignore_ascii_case(b"multipart/"))
        })
        .count();
    if multiparts > MAX_MIME_MULTIPARTS {
        return Err(DecodeError::Mime {
            origin: prefix(&origin),
            reason: format!(
                "{multiparts} multipart Content-Type headers, more than the limit of {MAX_MIME_MULTIPARTS}; user data needs one"
            ),
        });
    }
    let mail = mailparse::parse_mail(bytes).map_err(|e| DecodeError::Mime {
        origin: prefix(&origin),
        reason: crate::model::text::shorten_spans(&e.to_string()),
    })?;
    walk_mime(&mail, &origin, depth, budget, out)
}

fn walk_mime(
    part: &mailparse::ParsedMail<'_>,
    origin: &str,
    depth: usize,
    budget: &mut usize,
    out: &mut Vec<Payload>,
) -> Result<(), DecodeError> {
    if depth > MAX_NESTING {
        return Err(DecodeError::TooDeep {
            origin: prefix(origin),
        });
    }
    let mimetype = part.ctype.mimetype.to_ascii_lowercase();
    if mimetype.starts_with("multipart/") {
        let mimetype = crate::model::text::shorten(&mimetype);
        let Some(boundary) = part.ctype.params.get("boundary") else {
            return Err(DecodeError::Mime {
                origin: prefix(origin),
                reason: format!(
                    "Content-Type {mimetype} has no boundary parameter; add `boundary=\"...\"` to the Content-Type header"
                ),
            });
        };
        if part.subparts.len() > MAX_MIME_PARTS {
            return Err(DecodeError::Mime {
                origin: prefix(origin),
                reason: format!(
                    "{} parts, more than the limit of {MAX_MIME_PARTS}",
                    part.subparts.len()
                ),
            });
        }
        if part.subparts.is_empty() {
            let boundary = crate::model::text::shorten(boundary);
            return Err(DecodeError::Mime {
                origin: prefix(origin),
                reason: format!(
                    "boundary \"--{boundary}\" never appears in the body; every part must start with a line `--{boundary}`"
                ),
            });
        }
        for (i, sub) in part.subparts.iter().enumerate() {
            let sub_origin = if origin.is_empty() {
                format!("MIME part {}", i + 1)
            } else {
                format!("{origin}, part {}", i + 1)
            };
            walk_mime(sub, &sub_origin, depth + 1, budget, out)?;
        }
        return Ok(());
    }
    if mimetype != NODECONFIG_CONTENT_TYPE {
        tracing::debug!(origin = %origin, content_type = %crate::model::text::shorten(&mimetype), "MIME part is not a NodeConfig; skipped");
        return Ok(());
    }
    if let Some(cte) = part.headers.iter().rev().find(|h| {
        h.get_key_ref()
            .eq_ignore_ascii_case("content-transfer-encoding")
    }) {
        let value = cte.get_value();
        let encoding = value.trim().to_ascii_lowercase();
        if !TRANSFER_ENCODINGS.contains(&encoding.as_str()) {
            return Err(DecodeError::Mime {
                origin: prefix(origin),
                reason: format!(
                    "Content-Transfer-Encoding {} is not one of {}; write `base64` (or leave the header out for plain text)",
                    crate::model::text::echo(value.trim()),
                    TRANSFER_ENCODINGS.join(", ")
                ),
            });
        }
    }
    let body = part.get_body_raw().map_err(|e| DecodeError::Mime {
        origin: prefix(origin),
        reason: format!("body cannot be decoded with its Content-Transfer-Encoding: {e}"),
    })?;
    charge(budget, body.len(), origin)?;
    // A NodeConfig part is NodeConfig text by its declared type, whatever the mode.
    decode_into(&body, Mode::File, origin.to_owned(), depth + 1, budget, out)
}

/// Whether user-data text is meant as NodeConfig (rather than a script or cloud-config).
fn is_nodeconfig_text(text: &str) -> bool {
    let trimmed = text.trim_start();
    if trimmed.starts_with("#!")
        || trimmed.starts_with("#cloud-")
        || trimmed.starts_with("#include")
    {
        return false;
    }
    text.contains("apiVersion")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    const DOC: &str = "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\n";

    #[test]
    fn plain_text_is_one_payload() {
        let p = decode(DOC.as_bytes(), Mode::File).unwrap();
        assert_eq!(
            p,
            vec![Payload {
                origin: String::new(),
                text: DOC.into()
            }]
        );
    }

    #[test]
    fn base64_of_gzip_is_unwrapped() {
        let b64 = base64::engine::general_purpose::STANDARD.encode(gz(DOC.as_bytes()));
        let p = decode(b64.as_bytes(), Mode::UserData).unwrap();
        assert_eq!(p[0].text, DOC);
    }

    #[test]
    fn truncated_gzip_is_an_error() {
        let g = gz(DOC.as_bytes());
        let err = decode(&g[..g.len() / 2], Mode::File).unwrap_err();
        assert!(matches!(err, DecodeError::Gzip { .. }), "{err}");
    }

    #[test]
    fn gzip_bomb_stops_at_the_limit() {
        let big = vec![b'a'; MAX_DECODED_BYTES + 10];
        let err = decode(&gz(&big), Mode::File).unwrap_err();
        assert!(matches!(err, DecodeError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn user_data_script_is_skipped_but_file_script_is_kept() {
        let script = b"#!/bin/bash\necho hi\n";
        assert!(decode(script, Mode::UserData).unwrap().is_empty());
        assert_eq!(decode(script, Mode::File).unwrap().len(), 1);
    }

    #[test]
    fn mime_keeps_only_nodeconfig_parts() {
        let msg = format!(
            "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"B\"\n\n--B\nContent-Type: text/x-shellscript\n\n#!/bin/sh\necho\n--B\nContent-Type: application/node.eks.aws\n\n{DOC}\n--B--\n"
        );
        let p = decode(msg.as_bytes(), Mode::UserData).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].origin, "MIME part 2");
        assert!(p[0].text.contains("kind: NodeConfig"));
    }

    #[test]
    fn mime_without_boundary_is_an_error() {
        let msg = "MIME-Version: 1.0\nContent-Type: multipart/mixed\n\nhello\n";
        let err = decode(msg.as_bytes(), Mode::UserData).unwrap_err();
        assert!(err.to_string().contains("no boundary"), "{err}");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn seeds() -> Vec<Vec<u8>> {
            let mime = format!(
                "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"B\"\n\n--B\nContent-Type: application/node.eks.aws\nContent-Transfer-Encoding: base64\n\n{}\n--B--\n",
                base64::engine::general_purpose::STANDARD.encode(gz(DOC.as_bytes()))
            );
            vec![
                DOC.as_bytes().to_vec(),
                gz(DOC.as_bytes()),
                base64::engine::general_purpose::STANDARD
                    .encode(gz(mime.as_bytes()))
                    .into_bytes(),
                mime.into_bytes(),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// Arbitrary bytes never panic the decoder or the parser.
            #[test]
            fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
                let _ = decode(&bytes, Mode::UserData);
                let _ = crate::config::documents_from("fuzz", &bytes, Mode::File);
            }

            /// Valid user data with random bytes flipped, cut or inserted never panics.
            #[test]
            fn mutated_user_data_never_panics(
                seed in 0usize..4,
                edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
            ) {
                let mut bytes = seeds()[seed].clone();
                for (at, byte, op) in edits {
                    if bytes.is_empty() { break; }
                    let i = at.index(bytes.len());
                    match op {
                        0 => bytes[i] = byte,
                        1 => bytes.truncate(i),
                        _ => bytes.insert(i, byte),
                    }
                }
                let _ = decode(&bytes, Mode::UserData);
                let _ = crate::config::documents_from("fuzz", &bytes, Mode::File);
            }
        }
    }
}
