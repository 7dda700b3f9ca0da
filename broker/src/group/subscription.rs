//! The topics of a consumer-protocol subscription, which decide the offsets a Stable consumer
//! group keeps (offset retention, KIP-211). Parsing only; a leaf.

/// The topics of a consumer-protocol subscription (`ConsumerProtocolSubscription`, any
/// version: version, then the topic array come first). `None` if it does not parse.
pub(crate) fn parse_subscription_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut buf = metadata;
    let mut take = |n: usize| -> Option<&[u8]> {
        if buf.len() < n {
            return None;
        }
        let (head, tail) = buf.split_at(n);
        buf = tail;
        Some(head)
    };
    let version = i16::from_be_bytes(take(2)?.try_into().ok()?);
    if version < 0 {
        return None;
    }
    let count = i32::from_be_bytes(take(4)?.try_into().ok()?);
    let count = usize::try_from(count).ok()?;
    let mut topics = Vec::with_capacity(count.min(metadata.len() / 2));
    for _ in 0..count {
        let len = i16::from_be_bytes(take(2)?.try_into().ok()?);
        let len = usize::try_from(len).ok()?;
        let name = std::str::from_utf8(take(len)?).ok()?;
        topics.push(name.to_owned());
    }
    Some(topics)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscription(version: i16, topics: &[&str]) -> Vec<u8> {
        let mut b = version.to_be_bytes().to_vec();
        b.extend_from_slice(&(topics.len() as i32).to_be_bytes());
        for t in topics {
            b.extend_from_slice(&(t.len() as i16).to_be_bytes());
            b.extend_from_slice(t.as_bytes());
        }
        b.extend_from_slice(&(-1i32).to_be_bytes()); // null user data
        b
    }

    #[test]
    fn parses_subscription_topics() {
        assert_eq!(
            parse_subscription_topics(&subscription(3, &["a", "bb"])),
            Some(vec!["a".to_owned(), "bb".to_owned()])
        );
        assert_eq!(parse_subscription_topics(&[0, 1]), None);
        assert_eq!(parse_subscription_topics(&[0xff, 0xff, 0, 0, 0, 0]), None);
        // A huge count with no data is rejected without allocating it.
        assert_eq!(
            parse_subscription_topics(&[0, 0, 0x7f, 0xff, 0xff, 0xff]),
            None
        );
    }
}
