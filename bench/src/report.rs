//! Measuring and reporting: latency histograms, the once-a-second progress line on
//! stderr, and the final summary (human-readable or one JSON line) on stdout.

use std::fmt::Write as _;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// 10^6 bytes: the unit Kafka's perf tools call "MB".
pub const MB: f64 = 1_000_000.0;
pub const MIB: f64 = 1_048_576.0;

/// Latencies are recorded in microseconds, from 1 µs to 1 hour, with 3 significant digits
/// (error < 0.1%) — a fixed ~200 KiB whatever the run length.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static histogram bounds are valid")
}

/// Record one latency; values outside the range are clamped instead of lost.
pub fn record_micros(hist: &mut Histogram<u64>, micros: u64) {
    hist.saturating_record(micros.max(1));
}

/// Latency percentiles in milliseconds.
pub struct LatencyStats {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl LatencyStats {
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return LatencyStats {
                count: 0,
                mean_ms: 0.0,
                p50_ms: 0.0,
                p99_ms: 0.0,
                p999_ms: 0.0,
                max_ms: 0.0,
            };
        }
        LatencyStats {
            count: h.len(),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }

    /// Adds `<prefix>_p50_ms` ... `<prefix>_max_ms` to a summary.
    pub fn add_to(&self, summary: &mut Summary, prefix: &str, what: &str) {
        if self.count == 0 {
            summary.text(
                &format!("{prefix}_ms"),
                &format!("{what} latency"),
                "no samples".into(),
            );
            return;
        }
        for (suffix, label, v) in [
            ("p50", "p50", self.p50_ms),
            ("p99", "p99", self.p99_ms),
            ("p999", "p99.9", self.p999_ms),
            ("max", "max", self.max_ms),
            ("mean", "mean", self.mean_ms),
        ] {
            summary.float(
                &format!("{prefix}_{suffix}_ms"),
                &format!("{what} latency {label}"),
                v,
                3,
                "ms",
            );
        }
    }
}

/// Rate per second; 0 when no time elapsed (avoids inf/NaN in the output).
pub fn per_sec(amount: f64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        amount / secs
    } else {
        0.0
    }
}

enum Value {
    Int(i64),
    Float(f64, usize),
    Text(String),
}

struct Field {
    key: String,
    label: String,
    value: Value,
    unit: &'static str,
}

/// Final result of a command: an ordered list of fields printed either as an aligned
/// table or as one JSON object line (same keys either way, so scripts and people read
/// the same numbers).
pub struct Summary {
    command: &'static str,
    fields: Vec<Field>,
}

impl Summary {
    pub fn new(command: &'static str) -> Self {
        Summary {
            command,
            fields: Vec::new(),
        }
    }

    fn push(&mut self, key: &str, label: &str, value: Value, unit: &'static str) -> &mut Self {
        self.fields.push(Field {
            key: key.to_string(),
            label: label.to_string(),
            value,
            unit,
        });
        self
    }

    pub fn int(
        &mut self,
        key: &str,
        label: &str,
        v: impl TryInto<i64>,
        unit: &'static str,
    ) -> &mut Self {
        let v = v.try_into().unwrap_or(i64::MAX);
        self.push(key, label, Value::Int(v), unit)
    }

    pub fn float(
        &mut self,
        key: &str,
        label: &str,
        v: f64,
        decimals: usize,
        unit: &'static str,
    ) -> &mut Self {
        self.push(key, label, Value::Float(v, decimals), unit)
    }

    pub fn text(&mut self, key: &str, label: &str, v: String) -> &mut Self {
        self.push(key, label, Value::Text(v), "")
    }

    pub fn print(&self, json: bool) {
        if json {
            println!("{}", self.to_json());
        } else {
            print!("{}", self.to_table());
        }
    }

    fn to_table(&self) -> String {
        let width = self.fields.iter().map(|f| f.label.len()).max().unwrap_or(0);
        let mut out = format!("{} summary\n", self.command);
        for f in &self.fields {
            let value = match &f.value {
                Value::Int(v) => v.to_string(),
                Value::Float(v, d) => format!("{v:.d$}", d = *d),
                Value::Text(s) => s.clone(),
            };
            let line = format!("  {:<width$}  {value} {}", f.label, f.unit);
            let _ = writeln!(out, "{}", line.trim_end());
        }
        out
    }

    fn to_json(&self) -> String {
        let mut out = format!("{{\"command\":{}", json_string(self.command));
        for f in &self.fields {
            let value = match &f.value {
                Value::Int(v) => v.to_string(),
                Value::Float(v, d) if v.is_finite() => format!("{v:.d$}", d = *d),
                Value::Float(..) => "null".to_string(),
                Value::Text(s) => json_string(s),
            };
            let _ = write!(out, ",{}:{value}", json_string(&f.key));
        }
        out.push('}');
        out
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// What the progress thread samples each second: cumulative totals.
pub struct Snapshot {
    pub records: u64,
    pub bytes: u64,
    /// Appended to the line as is, e.g. ", acked 1200, errors 0".
    pub extra: String,
}

/// Prints a progress line to stderr every second until dropped, so a long run shows
/// it is alive and how fast it is going *now* (interval rates, not averages).
pub struct Progress {
    stop: Option<Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl Progress {
    /// `unit` names what `records` counts ("records", "commits"); bytes are shown only
    /// when `show_bytes`.
    pub fn start<F>(label: &'static str, unit: &'static str, show_bytes: bool, sample: F) -> Self
    where
        F: Fn() -> Snapshot + Send + 'static,
    {
        let (stop, rx) = mpsc::channel::<()>();
        let handle = thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                let start = Instant::now();
                let mut prev = sample();
                let mut prev_at = start;
                loop {
                    // The channel doubles as the 1 s tick and the stop signal.
                    match rx.recv_timeout(Duration::from_secs(1)) {
                        Err(RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                    let now = Instant::now();
                    let s = sample();
                    let dt = now - prev_at;
                    let rate = per_sec(s.records.saturating_sub(prev.records) as f64, dt);
                    let mut line = format!(
                        "[{:>6.1}s] {label}: {} {unit} ({rate:.0} {unit}/s",
                        (now - start).as_secs_f64(),
                        s.records
                    );
                    if show_bytes {
                        let mbps = per_sec(s.bytes.saturating_sub(prev.bytes) as f64, dt) / MB;
                        let _ = write!(line, ", {mbps:.2} MB/s");
                    }
                    line.push(')');
                    line.push_str(&s.extra);
                    eprintln!("{line}");
                    prev = s;
                    prev_at = now;
                }
            })
            .expect("spawning the progress thread");
        Progress {
            stop: Some(stop),
            handle: Some(handle),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Detects "no progress for a while" from a monotonically increasing counter.
pub struct Stall {
    seen: u64,
    since: Instant,
}

impl Stall {
    pub fn new(seen: u64) -> Self {
        Stall {
            seen,
            since: Instant::now(),
        }
    }

    /// True once `current` has not changed for `timeout`.
    pub fn stuck(&mut self, current: u64, timeout: Duration) -> bool {
        if current != self.seen {
            self.seen = current;
            self.since = Instant::now();
            false
        } else {
            self.since.elapsed() >= timeout
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_is_valid_and_escaped() {
        let mut s = Summary::new("produce");
        s.int("records", "records", 3u64, "")
            .float("mbps", "MB/s", 1.5, 2, "MB/s")
            .text("e", "err", "a\"b\n".into());
        s.float("nan", "nan", f64::NAN, 1, "");
        assert_eq!(
            s.to_json(),
            r#"{"command":"produce","records":3,"mbps":1.50,"e":"a\"b\n","nan":null}"#
        );
    }

    #[test]
    fn percentiles_in_ms() {
        let mut h = new_histogram();
        for us in 1..=1000u64 {
            record_micros(&mut h, us * 1000);
        }
        let st = LatencyStats::from_histogram(&h);
        assert_eq!(st.count, 1000);
        assert!((st.p50_ms - 500.0).abs() < 1.0, "{}", st.p50_ms);
        assert!((st.max_ms - 1000.0).abs() < 1.0, "{}", st.max_ms);
    }
}
