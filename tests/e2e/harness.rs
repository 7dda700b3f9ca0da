//! Starting and stopping `stratalog` processes for tests.
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureProducer;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// One `stratalog` child process; killed (SIGKILL) when dropped.
pub struct Process {
    child: Option<Child>,
    pub http: u16,
    args: Vec<String>,
    log: PathBuf,
}

impl Process {
    pub fn spawn(args: Vec<String>, http: u16, log: PathBuf) -> Process {
        let mut p = Process {
            child: None,
            http,
            args,
            log,
        };
        p.start();
        p
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_stratalog"))
            .args(&self.args)
            .env("RUST_LOG", "info,sled=warn,raft=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn stratalog");
        self.child = Some(child);
    }

    /// Waits until `/readyz` answers 200.
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "stratalog exited with {status} during start-up; log:\n{}",
                        self.log_text()
                    );
                }
            }
            if http_get(self.http, "/readyz").is_some_and(|(code, _)| code == 200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("stratalog not ready after 60 s; log:\n{}", self.log_text());
    }

    /// The running child's process id.
    /// Sends `signal` (as `kill` names it: "STOP", "CONT", "KILL", ...) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().expect("running");
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} {pid}");
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `(VmRSS, VmHWM)` of the running process in KiB, from /proc.
    pub fn memory_kib(&self) -> Option<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        };
        Some((field("VmRSS:")?, field("VmHWM:")?))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        self.start();
        self.wait_ready();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "---- stratalog log ({}) ----\n{}",
                self.log.display(),
                self.log_text()
            );
        }
    }
}

/// Starts `stratalog {args}` as role `name` with its data under `dir/{name}`, its log at
/// `dir/{name}.log` and an HTTP port of its own, and waits until it is ready.
pub fn spawn_role(dir: &std::path::Path, name: &str, args: &[String]) -> Process {
    let http = free_port();
    let mut all: Vec<String> = args.to_vec();
    all.extend([
        "--data-dir".into(),
        dir.join(name).display().to_string(),
        "--http-listen".into(),
        format!("127.0.0.1:{http}"),
    ]);
    let mut p = Process::spawn(all, http, dir.join(format!("{name}.log")));
    p.wait_ready();
    p
}

/// A metadata role on a free port, as role "metadata" under `dir`; returns it and its address.
pub fn spawn_metadata(dir: &std::path::Path) -> (Process, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let p = spawn_role(
        dir,
        "metadata",
        &["metadata".into(), "--listen".into(), addr.clone()],
    );
    (p, addr)
}

/// A bookie with id `id` (also its role name under `dir`) listening on `listen`.
pub fn spawn_bookie(dir: &std::path::Path, id: &str, listen: &str, metadata: &str) -> Process {
    spawn_role(
        dir,
        id,
        &[
            "bookie".into(),
            "--id".into(),
            id.into(),
            "--listen".into(),
            listen.into(),
            "--metadata-addr".into(),
            metadata.into(),
        ],
    )
}

/// A broker on a free Kafka port with `extra` flags; returns it and the Kafka port.
pub fn spawn_broker(dir: &std::path::Path, metadata: &str, extra: &[&str]) -> (Process, u16) {
    let kafka = free_port();
    let mut args: Vec<String> = vec![
        "broker".into(),
        "--kafka-listen".into(),
        format!("127.0.0.1:{kafka}"),
        "--metadata-addr".into(),
        metadata.into(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    (spawn_role(dir, "broker", &args), kafka)
}

/// Metadata, one bookie ("b1") and a broker as three processes.
pub struct ThreeRoles {
    pub metadata: Process,
    pub bookie: Process,
    pub broker: Process,
    pub metadata_addr: String,
    pub kafka: u16,
}

pub fn three_roles(dir: &std::path::Path, broker_extra: &[&str]) -> ThreeRoles {
    let (metadata, metadata_addr) = spawn_metadata(dir);
    let listen = format!("127.0.0.1:{}", free_port());
    let bookie = spawn_bookie(dir, "b1", &listen, &metadata_addr);
    let (broker, kafka) = spawn_broker(dir, &metadata_addr, broker_extra);
    ThreeRoles {
        metadata,
        bookie,
        broker,
        metadata_addr,
        kafka,
    }
}

/// A minimal HTTP/1.0 GET: (status code, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((code, body))
}

/// A standalone server with its own data directory.
pub struct Standalone {
    pub process: Process,
    pub kafka: u16,
    /// Holds the data directory until the server is dropped.
    _dir: tempfile::TempDir,
}

impl Standalone {
    pub fn start() -> Standalone {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Standalone {
        let dir = tempfile::tempdir().expect("tempdir");
        let kafka = free_port();
        let http = free_port();
        let mut args = vec![
            "standalone".to_string(),
            "--data-dir".into(),
            dir.path().join("data").display().to_string(),
            "--kafka-listen".into(),
            format!("127.0.0.1:{kafka}"),
            "--http-listen".into(),
            format!("127.0.0.1:{http}"),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut process = Process::spawn(args, http, dir.path().join("stratalog.log"));
        process.wait_ready();
        Standalone {
            process,
            kafka,
            _dir: dir,
        }
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.kafka)
    }

    pub fn data_dir(&self) -> PathBuf {
        self._dir.path().join("data")
    }
}

pub fn client_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4");
    c
}

pub fn producer(bootstrap: &str) -> FutureProducer {
    client_config(bootstrap)
        .set("acks", "all")
        .set("linger.ms", "1")
        .create()
        .expect("producer")
}

pub fn assigned_consumer(bootstrap: &str) -> BaseConsumer {
    client_config(bootstrap)
        .set("enable.auto.commit", "false")
        .set("group.id", "unused")
        .create()
        .expect("consumer")
}

pub fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    client_config(bootstrap).create().expect("admin client")
}

pub async fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    let admin = admin(bootstrap);
    let results = admin
        .create_topics(
            &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("create_topics");
    for r in results {
        r.expect("topic created");
    }
}

/// Polls `consumer` until `count` records arrived or `timeout` passed.
pub fn consume(
    consumer: &BaseConsumer,
    count: usize,
    timeout: Duration,
) -> Vec<rdkafka::message::OwnedMessage> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < count && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => out.push(m.detach()),
            Some(Err(e)) => eprintln!("consumer error (ignored while polling): {e}"),
            None => {}
        }
    }
    out
}

pub fn assign_from_beginning(consumer: &BaseConsumer, topic: &str, partitions: i32) {
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)
            .expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
}

/// A Kafka connection that sends hand-built frames, for inputs real clients never send.
pub struct RawConn {
    stream: TcpStream,
    next_correlation: i32,
}

impl RawConn {
    pub fn connect(port: u16) -> RawConn {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        RawConn {
            stream,
            next_correlation: 1,
        }
    }

    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Encodes `body` as a request of `key` at `version` and returns the response body.
    pub fn request<Req, Resp>(
        &mut self,
        key: kafka_protocol::messages::ApiKey,
        version: i16,
        body: &Req,
    ) -> Resp
    where
        Req: kafka_protocol::protocol::Encodable,
        Resp: kafka_protocol::protocol::Decodable,
    {
        use kafka_protocol::protocol::Encodable;
        let correlation = self.next_correlation;
        self.next_correlation += 1;
        let header = kafka_protocol::messages::RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(kafka_protocol::protocol::StrBytes::from_static_str(
                "raw",
            )));
        let mut buf = bytes::BytesMut::new();
        header
            .encode(&mut buf, key.request_header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        let mut frame = (buf.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&buf);
        self.send_bytes(&frame);
        let mut response = self.read_frame().expect("response frame");
        let got_correlation = i32::from_be_bytes(response[..4].try_into().unwrap());
        assert_eq!(got_correlation, correlation);
        let header_len = if key.response_header_version(version) >= 1 {
            5
        } else {
            4
        };
        let mut body = bytes::Bytes::from(response.split_off(header_len));
        Resp::decode(&mut body, version).expect("decode response")
    }

    /// The next response frame, or None if the server closed the connection.
    pub fn read_frame(&mut self) -> Option<Vec<u8>> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).ok()?;
        let mut frame = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut frame).ok()?;
        Some(frame)
    }

    /// True if the server closed the connection (EOF) within the read timeout.
    pub fn closed_by_server(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.stream.read(&mut byte), Ok(0))
            || matches!(self.stream.read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset)
    }
}

/// CRC-32C (Castagnoli), bitwise: test-only, to build and forge batches.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Appends `v` as a Kafka varint (zigzag, 7 bits a byte).
pub fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// One record of a hand-built batch: key, value, timestamp.
pub type RawRecord<'a> = (Option<&'a [u8]>, &'a [u8], i64);

/// Producer fields of a batch (id, epoch, base sequence); all -1: not idempotent.
pub const NO_PRODUCER: (i64, i16, i32) = (-1, -1, -1);

/// One uncompressed RecordBatch v2 of `records`, built byte by byte as the Kafka spec lays
/// it out, CRC included.
pub fn build_batch(records: &[RawRecord], producer: (i64, i16, i32)) -> bytes::Bytes {
    let base_ts = records.first().map_or(0, |r| r.2);
    let max_ts = records.iter().map(|r| r.2).max().unwrap_or(base_ts);
    let mut body = Vec::new();
    for (i, (key, value, ts)) in records.iter().enumerate() {
        let mut r = vec![0u8]; // attributes
        put_varint(&mut r, ts - base_ts);
        put_varint(&mut r, i as i64); // offset delta
        match key {
            Some(k) => {
                put_varint(&mut r, k.len() as i64);
                r.extend_from_slice(k);
            }
            None => put_varint(&mut r, -1),
        }
        put_varint(&mut r, value.len() as i64);
        r.extend_from_slice(value);
        put_varint(&mut r, 0); // no headers
        put_varint(&mut body, r.len() as i64);
        body.extend_from_slice(&r);
    }
    let count = records.len() as i32;
    let (producer_id, epoch, base_sequence) = producer;
    let mut b = Vec::new();
    b.extend_from_slice(&0i64.to_be_bytes()); // base offset
    b.extend_from_slice(&((49 + body.len()) as i32).to_be_bytes()); // batch length
    b.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    b.push(2); // magic
    b.extend_from_slice(&0u32.to_be_bytes()); // crc, below
    b.extend_from_slice(&0i16.to_be_bytes()); // attributes
    b.extend_from_slice(&(count - 1).to_be_bytes()); // last offset delta
    b.extend_from_slice(&base_ts.to_be_bytes());
    b.extend_from_slice(&max_ts.to_be_bytes());
    b.extend_from_slice(&producer_id.to_be_bytes());
    b.extend_from_slice(&epoch.to_be_bytes());
    b.extend_from_slice(&base_sequence.to_be_bytes());
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(&body);
    let crc = crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    bytes::Bytes::from(b)
}

/// One RecordBatch v2 holding `count` uncompressed records ("raw-0", "raw-1", ...) with
/// null keys and timestamps one millisecond apart.
pub fn record_batch(
    count: i32,
    producer_id: i64,
    epoch: i16,
    base_sequence: i32,
) -> bytes::BytesMut {
    let base_timestamp = 1_700_000_000_000i64;
    let values: Vec<String> = (0..count).map(|i| format!("raw-{i}")).collect();
    let records: Vec<RawRecord> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (None, v.as_bytes(), base_timestamp + i as i64))
        .collect();
    bytes::BytesMut::from(&build_batch(&records, (producer_id, epoch, base_sequence))[..])
}

pub fn produce_request(
    topic: &str,
    partition: i32,
    records: bytes::Bytes,
) -> kafka_protocol::messages::ProduceRequest {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    kafka_protocol::messages::ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(kafka_protocol::messages::TopicName(
                kafka_protocol::protocol::StrBytes::from_string(topic.to_string()),
            ))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])])
}

/// Sends one produce request and returns (error code, base offset) of its only partition.
pub fn raw_produce(
    conn: &mut RawConn,
    topic: &str,
    partition: i32,
    records: bytes::Bytes,
) -> (i16, i64) {
    let resp: kafka_protocol::messages::ProduceResponse = conn.request(
        kafka_protocol::messages::ApiKey::Produce,
        9,
        &produce_request(topic, partition, records),
    );
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}
