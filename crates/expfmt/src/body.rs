//! Undoing the `Content-Encoding` of a scrape body, under a size limit.

use std::borrow::Cow;
use std::io::Read;

use flate2::read::MultiGzDecoder;

/// A scrape body that could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The (decompressed) body is larger than the scrape's
    /// `body_size_limit`.
    #[error("body size exceeds the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("decompress gzip body")]
    Gzip(#[source] std::io::Error),
}

/// Decodes a scrape body given its `Content-Encoding` header and enforces
/// `limit` (in bytes, 0 for none) on the decoded size, which is what
/// Prometheus's `body_size_limit` bounds.
///
/// compat: Prometheus 2.42 gunzips only when the header is `gzip` and reads
/// anything else as is; we also accept other capitalisations of `gzip`.
/// Concatenated gzip members are read in sequence, as Go's reader does. The
/// body is borrowed when it needs no decoding.
pub fn decode_body<'b>(
    body: &'b [u8],
    content_encoding: Option<&str>,
    limit: usize,
) -> Result<Cow<'b, [u8]>, BodyError> {
    let gzip = content_encoding.is_some_and(|e| e.trim().eq_ignore_ascii_case("gzip"));
    if !gzip {
        if limit > 0 && body.len() > limit {
            return Err(BodyError::TooLarge { limit });
        }
        return Ok(Cow::Borrowed(body));
    }
    // Compression ratios of 5-10x are usual for exposition text.
    let guess = body.len().saturating_mul(8);
    let mut out = Vec::with_capacity(if limit > 0 { guess.min(limit) } else { guess });
    let decoder = MultiGzDecoder::new(body);
    if limit > 0 {
        // One byte past the limit tells "exactly at the limit" from "over".
        let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
        decoder
            .take(cap)
            .read_to_end(&mut out)
            .map_err(BodyError::Gzip)?;
        if out.len() > limit {
            return Err(BodyError::TooLarge { limit });
        }
    } else {
        let mut decoder = decoder;
        decoder.read_to_end(&mut out).map_err(BodyError::Gzip)?;
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn identity_is_borrowed_and_limited() {
        let body = b"a 1\n";
        assert!(matches!(decode_body(body, None, 0), Ok(Cow::Borrowed(b)) if b == body));
        assert!(matches!(
            decode_body(body, Some("identity"), 4),
            Ok(Cow::Borrowed(_))
        ));
        // compat: an unknown encoding is read as is.
        assert!(matches!(
            decode_body(body, Some("br"), 0),
            Ok(Cow::Borrowed(_))
        ));
        assert!(matches!(
            decode_body(body, None, 3),
            Err(BodyError::TooLarge { limit: 3 })
        ));
    }

    #[test]
    fn gunzips_under_the_limit() {
        let data = b"a 1\nb 2\n".repeat(100);
        let gz = gzip(&data);
        assert_eq!(&*decode_body(&gz, Some("gzip"), 0).unwrap(), &data[..]);
        assert_eq!(
            &*decode_body(&gz, Some(" GZIP "), data.len()).unwrap(),
            &data[..]
        );
        let err = decode_body(&gz, Some("gzip"), data.len() - 1).unwrap_err();
        assert!(matches!(err, BodyError::TooLarge { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            format!("body size exceeds the limit of {} bytes", data.len() - 1)
        );
    }

    #[test]
    fn concatenated_members() {
        let mut gz = gzip(b"a 1\n");
        gz.extend(gzip(b"b 2\n"));
        assert_eq!(&*decode_body(&gz, Some("gzip"), 0).unwrap(), b"a 1\nb 2\n");
    }

    #[test]
    fn corrupt_gzip_is_an_error() {
        let gz = gzip(b"a 1\n");
        assert!(matches!(
            decode_body(b"not gzip", Some("gzip"), 0),
            Err(BodyError::Gzip(_))
        ));
        assert!(matches!(
            decode_body(&gz[..gz.len() - 4], Some("gzip"), 0),
            Err(BodyError::Gzip(_))
        ));
        for cut in 0..gz.len() {
            let _ = decode_body(&gz[..cut], Some("gzip"), 100);
        }
    }
}
