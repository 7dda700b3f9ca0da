//! Decompression of record batch bodies, bounded.
//!
//! A producer controls the compressed bytes, and a megabyte of zstd or gzip can claim
//! gigabytes once inflated. Every codec here stops at `limit` output bytes and reports the
//! batch as too large instead of exhausting memory.
use std::io::Read;

/// A record batch's codec (attribute bits 0-2). Defined here, the leaf module, and
/// re-exported by `record_batch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None = 0,
    Gzip = 1,
    Snappy = 2,
    Lz4 = 3,
    Zstd = 4,
}

/// xerial snappy-java framing, used by the Java client and librdkafka: an 8-byte magic, two
/// 4-byte versions, then blocks of `u32 length` + raw snappy.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecompressError {
    #[error("{codec:?} data inflates past the {limit}-byte limit")]
    TooLarge { codec: Compression, limit: usize },
    #[error("{codec:?} data is corrupt: {detail}")]
    Corrupt { codec: Compression, detail: String },
}

pub fn decompress(
    codec: Compression,
    input: &[u8],
    limit: usize,
) -> Result<Vec<u8>, DecompressError> {
    let corrupt = |detail: String| DecompressError::Corrupt { codec, detail };
    match codec {
        Compression::None => Ok(input.to_vec()),
        Compression::Gzip => read_bounded(codec, flate2::read::MultiGzDecoder::new(input), limit),
        Compression::Lz4 => read_bounded(
            codec,
            lz4::Decoder::new(input).map_err(|e| corrupt(e.to_string()))?,
            limit,
        ),
        Compression::Zstd => read_bounded(
            codec,
            zstd::stream::read::Decoder::new(input).map_err(|e| corrupt(e.to_string()))?,
            limit,
        ),
        Compression::Snappy => snappy(input, limit),
    }
}

fn read_bounded(
    codec: Compression,
    reader: impl Read,
    limit: usize,
) -> Result<Vec<u8>, DecompressError> {
    let mut out = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| DecompressError::Corrupt {
            codec,
            detail: e.to_string(),
        })?;
    if out.len() > limit {
        return Err(DecompressError::TooLarge { codec, limit });
    }
    Ok(out)
}

fn snappy(input: &[u8], limit: usize) -> Result<Vec<u8>, DecompressError> {
    let codec = Compression::Snappy;
    let corrupt = |detail: String| DecompressError::Corrupt { codec, detail };
    let mut out = Vec::new();
    let append_block = |block: &[u8], out: &mut Vec<u8>| -> Result<(), DecompressError> {
        // The raw format states its length up front: check it before allocating.
        let len = snap::raw::decompress_len(block).map_err(|e| corrupt(e.to_string()))?;
        if out.len() + len > limit {
            return Err(DecompressError::TooLarge { codec, limit });
        }
        let start = out.len();
        out.resize(start + len, 0);
        snap::raw::Decoder::new()
            .decompress(block, &mut out[start..])
            .map_err(|e| corrupt(e.to_string()))?;
        Ok(())
    };
    if !input.starts_with(XERIAL_MAGIC) {
        append_block(input, &mut out)?;
        return Ok(out);
    }
    let mut rest = input
        .get(XERIAL_HEADER_LEN..)
        .ok_or_else(|| corrupt("truncated xerial header".into()))?;
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_at_checked(4)
            .ok_or_else(|| corrupt("truncated block length".into()))?;
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let (block, tail) = tail
            .split_at_checked(len)
            .ok_or_else(|| corrupt(format!("block of {len} bytes is truncated")))?;
        append_block(block, &mut out)?;
        rest = tail;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn round_trips_and_bombs() {
        let data = vec![7u8; 100_000];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&data).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(decompress(Compression::Gzip, &gz, 200_000).unwrap(), data);
        assert!(matches!(
            decompress(Compression::Gzip, &gz, 50_000),
            Err(DecompressError::TooLarge { .. })
        ));

        let zs = zstd::encode_all(&data[..], 3).unwrap();
        assert_eq!(decompress(Compression::Zstd, &zs, 100_000).unwrap(), data);
        assert!(matches!(
            decompress(Compression::Zstd, &zs, 99_999),
            Err(DecompressError::TooLarge { .. })
        ));

        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(
            decompress(Compression::Snappy, &raw, 100_000).unwrap(),
            data
        );
        let mut xerial = XERIAL_MAGIC.to_vec();
        xerial.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
        for _ in 0..2 {
            xerial.extend_from_slice(&(raw.len() as u32).to_be_bytes());
            xerial.extend_from_slice(&raw);
        }
        assert_eq!(
            decompress(Compression::Snappy, &xerial, 200_000)
                .unwrap()
                .len(),
            200_000
        );
        assert!(matches!(
            decompress(Compression::Snappy, &xerial, 150_000),
            Err(DecompressError::TooLarge { .. })
        ));

        let mut lz = lz4::EncoderBuilder::new().build(Vec::new()).unwrap();
        lz.write_all(&data).unwrap();
        let (lz, _) = lz.finish();
        assert_eq!(decompress(Compression::Lz4, &lz, 100_000).unwrap(), data);

        assert!(matches!(
            decompress(Compression::Zstd, b"not zstd", 10),
            Err(DecompressError::Corrupt { .. })
        ));
        assert!(decompress(Compression::Snappy, &xerial[..20], 1000).is_err());
    }
}
