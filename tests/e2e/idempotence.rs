//! Idempotent producers: duplicates are acknowledged once, gaps rejected, state rebuilt after
//! a restart.
use std::time::Duration;

use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, InitProducerIdResponse};
use rdkafka::producer::FutureRecord;

use crate::harness::*;

const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;

fn init_producer_id(c: &mut RawConn) -> (i64, i16) {
    let resp: InitProducerIdResponse = c.request(
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000),
    );
    assert_eq!(resp.error_code, 0);
    (resp.producer_id.0, resp.producer_epoch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_are_written_once_and_gaps_rejected_across_restarts() {
    let mut server = Standalone::start();
    create_topic(&server.bootstrap(), "idem", 1).await;
    let mut c = RawConn::connect(server.kafka);
    let (pid, epoch) = init_producer_id(&mut c);
    let (pid2, _) = init_producer_id(&mut c);
    assert_ne!(pid, pid2, "producer ids are unique");

    let first = record_batch(2, pid, epoch, 0).freeze();
    assert_eq!(raw_produce(&mut c, "idem", 0, first.clone()), (0, 0));
    // A retry of the same batch: acknowledged at the same offset, not written again.
    assert_eq!(raw_produce(&mut c, "idem", 0, first.clone()), (0, 0));
    // A gap in the sequence.
    assert_eq!(
        raw_produce(&mut c, "idem", 0, record_batch(1, pid, epoch, 5).freeze()).0,
        OUT_OF_ORDER_SEQUENCE_NUMBER
    );
    let second = record_batch(1, pid, epoch, 2).freeze();
    assert_eq!(raw_produce(&mut c, "idem", 0, second.clone()), (0, 2));

    // After kill -9 and restart the producer state is rebuilt from the log.
    server.process.restart();
    let mut c = RawConn::connect(server.kafka);
    assert_eq!(raw_produce(&mut c, "idem", 0, second), (0, 2));
    assert_eq!(
        raw_produce(&mut c, "idem", 0, record_batch(1, pid, epoch, 3).freeze()),
        (0, 3)
    );
    let (pid3, _) = init_producer_id(&mut c);
    assert!(
        pid3 != pid && pid3 != pid2,
        "producer ids are not reused after a restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_idempotent_producer_works() {
    let server = Standalone::start();
    let producer: rdkafka::producer::FutureProducer = client_config(&server.bootstrap())
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    for i in 0..50 {
        let delivery = producer
            .send(
                FutureRecord::<(), String>::to("idem-rd")
                    .partition(0)
                    .payload(&format!("{i}")),
                Duration::from_secs(10),
            )
            .await
            .expect("delivered");
        assert_eq!(delivery.offset, i);
    }
}
