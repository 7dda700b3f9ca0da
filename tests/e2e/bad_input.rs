//! Malformed input gets a Kafka error or a closed connection, never a crash or a damaged log,
//! and other clients keep working throughout.
use std::time::Duration;

use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest};
use rdkafka::producer::FutureRecord;
use rdkafka::Message;

use crate::harness::*;

const CORRUPT_MESSAGE: i16 = 2;
const MESSAGE_TOO_LARGE: i16 = 10;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const UNSUPPORTED_VERSION: i16 = 35;
const INVALID_RECORD: i16 = 87;

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_close_only_their_connection() {
    let server = Standalone::start();
    let bootstrap = server.bootstrap();
    create_topic(&bootstrap, "safe", 1).await;
    let producer = producer(&bootstrap);
    producer
        .send(
            FutureRecord::<(), str>::to("safe")
                .partition(0)
                .payload("before"),
            Duration::from_secs(10),
        )
        .await
        .unwrap();

    // Garbage that is not a Kafka header.
    let mut c = RawConn::connect(server.kafka);
    c.send_bytes(&frame(&[0xde, 0xad]));
    assert!(c.closed_by_server(), "garbage frame");

    // A frame claiming 2 GiB: refused before anything is allocated.
    let mut c = RawConn::connect(server.kafka);
    c.send_bytes(&[0x7f, 0xff, 0xff, 0xff, 0, 1, 2, 3]);
    assert!(c.closed_by_server(), "2 GiB frame");

    // A negative size.
    let mut c = RawConn::connect(server.kafka);
    c.send_bytes(&[0xff, 0xff, 0xff, 0xf0]);
    assert!(c.closed_by_server(), "negative size");

    // Unknown API key.
    let mut c = RawConn::connect(server.kafka);
    c.send_bytes(&frame(&[0x7f, 0x00, 0, 0, 0, 0, 0, 1, 0, 0]));
    assert!(c.closed_by_server(), "unknown api key");

    // Known API at a version we do not speak (Metadata v99).
    let mut c = RawConn::connect(server.kafka);
    c.send_bytes(&frame(&[0, 3, 0, 99, 0, 0, 0, 1, 0, 0]));
    assert!(c.closed_by_server(), "unsupported version");

    // A header that promises a body that is not there.
    let mut c = RawConn::connect(server.kafka);
    c.send_bytes(&frame(&[0, 3, 0, 9, 0, 0, 0, 1, 0, 5, b'a']));
    assert!(c.closed_by_server(), "truncated header");

    // A frame cut off mid-way, then the client goes away: the server must not hang on it.
    let mut c = RawConn::connect(server.kafka);
    c.send_bytes(&[0, 0, 0, 100, 0, 3]);
    drop(c);

    // Array counts that lie: 2^31-1 topics in a 16-byte Metadata v1 and Produce v3 request.
    // The decoder reserves room for them before reading any; that must not take the server down.
    let mut c = RawConn::connect(server.kafka);
    c.send_bytes(&frame(&[
        0, 3, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff,
    ]));
    assert!(c.closed_by_server(), "lying Metadata array count");
    let mut c = RawConn::connect(server.kafka);
    c.send_bytes(&frame(&[
        0, 0, 0, 3, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0x75, 0x30, 0x7f, 0xff,
        0xff, 0xff,
    ]));
    assert!(c.closed_by_server(), "lying Produce array count");

    // ApiVersions at a future version: answered in v0 with UNSUPPORTED_VERSION (KIP-511).
    let mut c = RawConn::connect(server.kafka);
    c.send_bytes(&frame(&[0, 18, 0, 99, 0, 0, 0, 7, 0, 0]));
    let response = c.read_frame().expect("ApiVersions answer");
    assert_eq!(&response[..4], &7i32.to_be_bytes());
    assert_eq!(
        i16::from_be_bytes([response[4], response[5]]),
        UNSUPPORTED_VERSION
    );

    // The connection that asked properly still works, and so do real clients.
    let mut c = RawConn::connect(server.kafka);
    let versions: ApiVersionsResponse =
        c.request(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(versions.error_code, 0);
    let _: kafka_protocol::messages::MetadataResponse =
        c.request(ApiKey::Metadata, 12, &MetadataRequest::default());
    producer
        .send(
            FutureRecord::<(), str>::to("safe")
                .partition(0)
                .payload("after"),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    let consumer = assigned_consumer(&bootstrap);
    assign_from_beginning(&consumer, "safe", 1);
    let got = consume(&consumer, 2, Duration::from_secs(20));
    let values: Vec<_> = got
        .iter()
        .map(|m| m.payload().map(<[u8]>::to_vec))
        .collect();
    assert_eq!(
        values,
        vec![Some(b"before".to_vec()), Some(b"after".to_vec())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_record_batches_are_rejected_and_the_log_stays_intact() {
    let server = Standalone::start();
    create_topic(&server.bootstrap(), "strict", 1).await;
    let mut c = RawConn::connect(server.kafka);

    let good = record_batch(3, -1, -1, -1);
    assert_eq!(
        raw_produce(&mut c, "strict", 0, good.clone().freeze()),
        (0, 0)
    );

    let mut bad_crc = good.clone();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0x55;
    assert_eq!(
        raw_produce(&mut c, "strict", 0, bad_crc.freeze()).0,
        CORRUPT_MESSAGE
    );

    let mut bad_magic = good.clone();
    bad_magic[16] = 1;
    assert_eq!(
        raw_produce(&mut c, "strict", 0, bad_magic.freeze()).0,
        INVALID_RECORD
    );

    // Claims 4 records, holds 3 (CRC recomputed so only the count is wrong).
    let mut miscounted = good.clone();
    miscounted[57..61].copy_from_slice(&4i32.to_be_bytes());
    miscounted[23..27].copy_from_slice(&3i32.to_be_bytes());
    let crc = crc32c(&miscounted[21..]);
    miscounted[17..21].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(
        raw_produce(&mut c, "strict", 0, miscounted.freeze()).0,
        INVALID_RECORD
    );

    let truncated = good.clone().split_to(good.len() - 4);
    assert_eq!(
        raw_produce(&mut c, "strict", 0, truncated.freeze()).0,
        CORRUPT_MESSAGE
    );

    let mut two_batches = good.clone();
    two_batches.extend_from_slice(&good);
    assert_eq!(
        raw_produce(&mut c, "strict", 0, two_batches.freeze()).0,
        INVALID_RECORD
    );

    // Larger than max.message.bytes (1 MiB by default).
    let mut oversized = good.clone();
    oversized.resize(2 * 1024 * 1024, 0);
    assert_eq!(
        raw_produce(&mut c, "strict", 0, oversized.freeze()).0,
        MESSAGE_TOO_LARGE
    );

    assert_eq!(
        raw_produce(&mut c, "nope", 0, good.clone().freeze()).0,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(
        raw_produce(&mut c, "strict", 7, good.clone().freeze()).0,
        UNKNOWN_TOPIC_OR_PARTITION
    );

    // Only the good batches are in the log, at consecutive offsets.
    assert_eq!(raw_produce(&mut c, "strict", 0, good.freeze()), (0, 3));
    let consumer = assigned_consumer(&server.bootstrap());
    assign_from_beginning(&consumer, "strict", 1);
    let got = consume(&consumer, 6, Duration::from_secs(20));
    assert_eq!(
        got.iter().map(|m| m.offset()).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4, 5]
    );
}
