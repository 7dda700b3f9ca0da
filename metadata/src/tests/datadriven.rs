//! Data-driven state machine tests in the raft-rs style. Each file in `testdata/` holds
//! cases: a command line, a `----` line, then the expected output up to a blank line.
//! Commands run against a bare [`StateMachine`] (no raft), each as the next log entry.
//! Run with `REWRITE=1` to regenerate the expected outputs (then review the diff).
//!
//! ```text
//! put KEY VALUE [expect=any|absent|REV] [lease=ID]
//! del KEY [expect=...]
//! batch OP; OP; ...            (OP is a put or del line as above)
//! delprefix PREFIX             ("" for everything)
//! grant TTL_MS | revoke ID | expire ID
//! get KEY | list PREFIX | state
//! garbage                      (an undecodable entry)
//! snapshot-restore             (round-trip the whole state through a snapshot)
//! ```
use std::fmt::Write as _;
use std::path::Path;

use bytes::Bytes;

use crate::command::{Command, Response};
use crate::layout::STATE_TREE;
use crate::state_machine::{Applied, StateMachine};
use crate::types::{EventKind, Expect, KeyValue, Op};

struct Runner {
    db: sled::Db,
    sm: StateMachine,
    index: u64,
    restores: u32,
}

impl Runner {
    fn new() -> Runner {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let sm = StateMachine::open(db.open_tree(STATE_TREE).unwrap()).unwrap();
        Runner {
            db,
            sm,
            index: 1,
            restores: 0,
        }
    }

    fn next_index(&mut self) -> u64 {
        self.index += 1;
        self.index
    }

    fn apply(&mut self, cmd: Command) -> String {
        let index = self.next_index();
        let applied = self.sm.apply(index, &cmd.encode()).unwrap();
        render_applied(applied)
    }

    fn run(&mut self, line: &str) -> Result<String, String> {
        let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
        Ok(match verb {
            "put" | "del" => self.apply(Command::Txn(vec![parse_op(line)?])),
            "batch" => {
                let ops = rest
                    .split(';')
                    .map(|op| parse_op(op.trim()))
                    .collect::<Result<Vec<_>, _>>()?;
                self.apply(Command::Txn(ops))
            }
            "delprefix" => self.apply(Command::DeletePrefix(unquote(rest).to_owned())),
            "grant" => self.apply(Command::GrantLease {
                ttl_ms: rest.parse().map_err(|_| "bad ttl")?,
            }),
            "revoke" => self.apply(Command::RevokeLease(rest.parse().map_err(|_| "bad id")?)),
            "expire" => self.apply(Command::ExpireLease(rest.parse().map_err(|_| "bad id")?)),
            "garbage" => {
                let index = self.next_index();
                render_applied(self.sm.apply(index, &[1, 99, 0]).unwrap())
            }
            "get" => match self.sm.get(rest).unwrap() {
                Some(kv) => render_kv(&kv),
                None => "none".into(),
            },
            "list" => {
                let (kvs, rev) = self.sm.list(unquote(rest)).unwrap();
                let mut out = format!("revision={rev}");
                for kv in kvs {
                    write!(out, "\n{}", render_kv(&kv)).unwrap();
                }
                out
            }
            "state" => {
                let leases: Vec<String> = self
                    .sm
                    .leases()
                    .unwrap()
                    .into_iter()
                    .map(|(id, ttl)| format!("{id}:{}ms", ttl.as_millis()))
                    .collect();
                format!(
                    "applied={} revision={} keys={} leases=[{}]",
                    self.sm.applied(),
                    self.sm.revision(),
                    self.sm.key_count(),
                    leases.join(" ")
                )
            }
            "snapshot-restore" => {
                let (index, data) = self.sm.snapshot().unwrap();
                self.restores += 1;
                let tree = self
                    .db
                    .open_tree(format!("restored-{}", self.restores))
                    .unwrap();
                let fresh = StateMachine::open(tree.clone()).unwrap();
                fresh
                    .restore(&data, index, |batch| {
                        tree.apply_batch(batch.clone()).map_err(Into::into)
                    })
                    .unwrap();
                self.sm = fresh;
                format!("restored {} bytes at index {index}", data.len())
            }
            other => return Err(format!("unknown command {other:?}")),
        })
    }
}

fn unquote(s: &str) -> &str {
    s.trim().trim_matches('"')
}

fn parse_op(line: &str) -> Result<Op, String> {
    let mut words = line.split_whitespace();
    let verb = words.next().ok_or("empty op")?;
    let key = words.next().ok_or("missing key")?.to_owned();
    let mut value = None;
    let mut expect = Expect::Any;
    let mut lease = None;
    for w in words {
        if let Some(e) = w.strip_prefix("expect=") {
            expect = match e {
                "any" => Expect::Any,
                "absent" => Expect::Absent,
                rev => Expect::Revision(rev.parse().map_err(|_| format!("bad expect {rev}"))?),
            };
        } else if let Some(l) = w.strip_prefix("lease=") {
            lease = Some(l.parse().map_err(|_| format!("bad lease {l}"))?);
        } else if value.is_none() {
            value = Some(Bytes::copy_from_slice(w.as_bytes()));
        } else {
            return Err(format!("unexpected word {w:?}"));
        }
    }
    match verb {
        "put" => Ok(Op::Put {
            key,
            value: value.ok_or("put needs a value")?,
            expect,
            lease,
        }),
        "del" => Ok(Op::Delete { key, expect }),
        v => Err(format!("unknown op {v:?}")),
    }
}

fn render_kv(kv: &KeyValue) -> String {
    let mut s = format!(
        "{}={} create={} mod={}",
        kv.key,
        String::from_utf8_lossy(&kv.value),
        kv.create_revision,
        kv.mod_revision
    );
    if let Some(l) = kv.lease {
        write!(s, " lease={l}").unwrap();
    }
    s
}

fn render_applied(applied: Applied) -> String {
    let mut out = match applied.result {
        Ok(Response::Txn(results)) => {
            let mut s = "ok".to_string();
            for r in results {
                match r {
                    Some(kv) => write!(s, "\n  {}", render_kv(&kv)).unwrap(),
                    None => s.push_str("\n  none"),
                }
            }
            s
        }
        Ok(Response::Deleted(n)) => format!("ok deleted={n}"),
        Ok(Response::Lease(id)) => format!("ok lease={id}"),
        Ok(Response::LeaseGone) => "ok".to_string(),
        Err(crate::MetadataError::Conflict { key, current }) => format!(
            "conflict key={key} current={}",
            current.as_ref().map_or("none".to_string(), render_kv)
        ),
        Err(e) => format!("error: {e}"),
    };
    for e in applied.events {
        let kind = match e.kind {
            EventKind::Put => "put",
            EventKind::Delete => "delete",
        };
        write!(out, "\nevent {kind} {}@{}", e.kv.key, e.kv.mod_revision).unwrap();
    }
    out
}

/// Runs one file; returns the file's text with actual outputs, and mismatches.
fn run_file(path: &Path) -> (String, Vec<String>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut runner = Runner::new();
    let mut rewritten = String::new();
    let mut failures = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((lineno, line)) = lines.next() {
        if line.trim().is_empty() || line.starts_with('#') {
            rewritten.push_str(line);
            rewritten.push('\n');
            continue;
        }
        let sep = lines.next().map(|(_, l)| l);
        assert_eq!(
            sep,
            Some("----"),
            "{}:{}: expected ----",
            path.display(),
            lineno + 2
        );
        let mut expected = Vec::new();
        while let Some((_, l)) = lines.peek() {
            if l.is_empty() {
                break;
            }
            expected.push(lines.next().unwrap().1);
        }
        let actual = runner
            .run(line)
            .unwrap_or_else(|e| format!("parse error: {e}"));
        if actual != expected.join("\n") {
            failures.push(format!(
                "{}:{}: {line}\n--- expected\n{}\n--- actual\n{actual}",
                path.display(),
                lineno + 1,
                expected.join("\n")
            ));
        }
        write!(rewritten, "{line}\n----\n{actual}\n").unwrap();
    }
    (rewritten, failures)
}

#[test]
fn state_machine_testdata() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no testdata files in {}", dir.display());
    let rewrite = std::env::var_os("REWRITE").is_some();
    let mut failures = Vec::new();
    for path in files {
        let (rewritten, mut f) = run_file(&path);
        if rewrite {
            std::fs::write(&path, rewritten).unwrap();
        } else {
            failures.append(&mut f);
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}
