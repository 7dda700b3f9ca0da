//! Talking to the cluster before the benchmark proper: connection options shared by all
//! commands, a fast reachability pre-check, metadata, topic creation, and a client
//! context that remembers librdkafka's last error so failures can say *why*.

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::Client;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::ClientContext;

/// What to tell a user whose endpoint is not there.
pub const START_HINT: &str =
    "is Stratalog running? start it with `cargo run --release -- standalone`, \
or point --bootstrap (or STRATALOG_BOOTSTRAP) at a running Kafka-compatible endpoint";

/// Options every command takes.
#[derive(Args, Debug, Clone)]
pub struct ConnArgs {
    /// Bootstrap servers of any Kafka-compatible endpoint: comma-separated HOST:PORT list.
    #[arg(
        long,
        env = "STRATALOG_BOOTSTRAP",
        default_value = "127.0.0.1:9092",
        value_name = "HOST:PORT[,HOST:PORT...]"
    )]
    pub bootstrap: String,

    /// Topic to benchmark.
    #[arg(long, default_value = "bench")]
    pub topic: String,

    /// Fail if the endpoint does not accept a TCP connection and answer a metadata request
    /// within this many seconds.
    #[arg(long, default_value_t = 10, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub connect_timeout_secs: u64,

    /// Print the final summary as one JSON object line on stdout instead of the
    /// human-readable table (progress still goes to stderr).
    #[arg(long)]
    pub json: bool,
}

impl ConnArgs {
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }
}

/// clap parser for repeated `--producer-prop`/`--consumer-prop KEY=VALUE` options.
pub fn parse_prop(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!(
            "expected KEY=VALUE (a librdkafka property, e.g. enable.idempotence=true), got '{s}'"
        )),
    }
}

/// clap parser for --replication-factor: -1 (broker default) or at least 1.
pub fn parse_replication_factor(s: &str) -> Result<i32, String> {
    match s.parse::<i32>() {
        Ok(v) if v == -1 || v >= 1 => Ok(v),
        _ => Err(format!(
            "expected -1 (the broker's default) or a number >= 1, got '{s}'"
        )),
    }
}

/// Base librdkafka config: bootstrap plus the user's pass-through properties last, so the
/// user can override anything this tool sets.
pub fn client_config(
    bootstrap: &str,
    defaults: &[(&str, String)],
    user_props: &[(String, String)],
) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap);
    for (k, v) in defaults {
        cfg.set(*k, v.as_str());
    }
    for (k, v) in user_props {
        cfg.set(k.as_str(), v.as_str());
    }
    cfg
}

/// librdkafka retries an unreachable broker silently until `message.timeout.ms` (5 min) or
/// the metadata timeout runs out. A plain TCP connect first turns "nothing is listening"
/// into an immediate, explicit error instead of a long wait.
pub fn check_reachable(bootstrap: &str, timeout: Duration) -> Result<()> {
    let mut failures = Vec::new();
    for entry in bootstrap
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        // Accept "PLAINTEXT://host:port" style entries as Kafka configs often carry them.
        let hostport = entry.rsplit("://").next().unwrap_or(entry);
        if !hostport.contains(':') {
            bail!("--bootstrap entry '{entry}' has no port: use HOST:PORT (Kafka's usual port is 9092)");
        }
        let addrs: Vec<_> = match hostport.to_socket_addrs() {
            Ok(addrs) => addrs.collect(),
            Err(e) => {
                failures.push(format!("{hostport}: {e}"));
                continue;
            }
        };
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(_) => return Ok(()),
                Err(e) => failures.push(format!("{addr}: {e}")),
            }
        }
    }
    if failures.is_empty() {
        bail!("--bootstrap '{bootstrap}' names no HOST:PORT address");
    }
    bail!(
        "cannot reach {bootstrap} ({}) — {START_HINT}",
        failures.join("; ")
    )
}

/// librdkafka reports connection and protocol trouble asynchronously through the error
/// callback; keeping the last message lets a later timeout say what actually went wrong.
#[derive(Clone, Default)]
pub struct ClientErrors {
    last: Arc<Mutex<Option<String>>>,
}

impl ClientErrors {
    pub fn record(&self, error: &KafkaError, reason: &str) {
        let msg = if reason.is_empty() {
            error.to_string()
        } else {
            reason.to_string()
        };
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        // Print each new error once (librdkafka repeats e.g. reconnect failures), so a
        // benchmark that is silently degrading shows why on stderr.
        if last.as_deref() != Some(msg.as_str()) {
            eprintln!("librdkafka: {msg}");
        }
        *last = Some(msg);
    }

    pub fn last(&self) -> Option<String> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// " (last client error: ...)" or "", for appending to error messages.
    pub fn hint(&self) -> String {
        self.last()
            .map(|m| format!(" (last client error: {m})"))
            .unwrap_or_default()
    }
}

/// Context for clients that need nothing but error capture (admin client, consume).
pub struct ErrorContext {
    pub errors: ClientErrors,
}

impl ClientContext for ErrorContext {
    fn error(&self, error: KafkaError, reason: &str) {
        self.errors.record(&error, reason);
    }
}

impl ConsumerContext for ErrorContext {}

/// Partition count of `topic`, or None if the cluster does not know it. Doubles as the
/// "does this speak Kafka at all" check, bounded by --connect-timeout-secs.
pub fn find_topic<C: ClientContext>(
    client: &Client<C>,
    conn: &ConnArgs,
    errors: &ClientErrors,
) -> Result<Option<usize>> {
    // All-topics metadata: asking for one topic by name may auto-create it on brokers
    // with auto.create.topics.enable, with the broker's default partition count.
    let md = client.fetch_metadata(None, conn.connect_timeout()).map_err(|e| {
        anyhow!(
            "{} accepted a TCP connection but did not answer a Kafka metadata request within {}s: {e}{} — \
             is it a Kafka-compatible endpoint, and healthy? (try a larger --connect-timeout-secs if it is \
             still starting)",
            conn.bootstrap,
            conn.connect_timeout_secs,
            errors.hint()
        )
    })?;
    Ok(md
        .topics()
        .iter()
        .find(|t| t.name() == conn.topic)
        .map(|t| t.partitions().len()))
}

/// Make sure the topic exists (creating it with `partitions` partitions if not) and that
/// every partition has a leader. Returns the partition count.
pub fn ensure_topic<C: ClientContext>(
    client: &Client<C>,
    conn: &ConnArgs,
    user_props: &[(String, String)],
    partitions: Option<i32>,
    replication_factor: i32,
    errors: &ClientErrors,
) -> Result<usize> {
    if let Some(n) = find_topic(client, conn, errors)? {
        if let Some(p) = partitions.filter(|&p| p as usize != n) {
            eprintln!(
                "note: topic '{}' already exists with {n} partition(s); --partitions {p} is ignored \
                 (delete the topic to change it)",
                conn.topic
            );
        }
        return Ok(n);
    }
    let partitions = partitions.unwrap_or(1);
    eprintln!(
        "creating topic '{}' with {partitions} partition(s)",
        conn.topic
    );
    create_topic(conn, user_props, partitions, replication_factor, errors)?;

    // CreateTopics can answer before every broker has the topic's leaders in its metadata;
    // starting before then would turn the first seconds of the run into retries.
    let deadline = Instant::now() + conn.connect_timeout();
    loop {
        let md = client
            .fetch_metadata(None, conn.connect_timeout())
            .with_context(|| {
                format!(
                    "metadata request after creating topic '{}'{}",
                    conn.topic,
                    errors.hint()
                )
            })?;
        if let Some(t) = md.topics().iter().find(|t| t.name() == conn.topic) {
            let ready = t.error().is_none()
                && !t.partitions().is_empty()
                && t.partitions()
                    .iter()
                    .all(|p| p.leader() >= 0 && p.error().is_none());
            if ready {
                return Ok(t.partitions().len());
            }
        }
        if Instant::now() >= deadline {
            bail!(
                "topic '{}' was created but not every partition had a leader after {}s — check the broker logs{}",
                conn.topic,
                conn.connect_timeout_secs,
                errors.hint()
            );
        }
        thread::sleep(Duration::from_millis(200));
    }
}

fn create_topic(
    conn: &ConnArgs,
    user_props: &[(String, String)],
    partitions: i32,
    replication_factor: i32,
    errors: &ClientErrors,
) -> Result<()> {
    // The user's properties are passed on so security settings (SASL/SSL) apply here too.
    let admin: AdminClient<ErrorContext> = client_config(&conn.bootstrap, &[], user_props)
        .create_with_context(ErrorContext {
            errors: errors.clone(),
        })
        .context("creating the admin client")?;
    let opts = AdminOptions::new()
        .request_timeout(Some(conn.connect_timeout()))
        .operation_timeout(Some(conn.connect_timeout()));
    let topic = NewTopic::new(
        &conn.topic,
        partitions,
        TopicReplication::Fixed(replication_factor),
    );
    // The admin future completes from librdkafka's own thread; a throwaway current-thread
    // runtime is the smallest way to wait for it.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a tokio runtime for the admin request")?;
    let results = rt
        .block_on(admin.create_topics([&topic], &opts))
        .map_err(|e| {
            anyhow!(
                "creating topic '{}' failed: {e}{}",
                conn.topic,
                errors.hint()
            )
        })?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => bail!(
                "creating topic '{name}' failed: {code} — create it with your cluster's tools, \
                 or retry with --replication-factor 1 (the default -1 asks for the broker's default){}",
                errors.hint()
            ),
        }
    }
    Ok(())
}
