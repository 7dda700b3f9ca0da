//! The Kafka clients other than librdkafka that the tests drive, and how they are found.
//!
//! - kcat and the Java and Node runtimes come from Debian packages (`.ci/run` installs them;
//!   that needs root, so the tests never do).
//! - kafka-python, the Apache Kafka Java client's jars and kafkajs are installed at pinned
//!   versions under `target/test-deps/` by `tests/deps/install.sh`. The first test that needs
//!   one runs the installer, once per test process (it is idempotent and takes a file lock,
//!   so concurrent runs are safe); a second run is a no-op.
//!
//! A test whose client is still missing after that panics with the command that installs it:
//! no test passes without the client it is about.
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const INSTALLER: &str = "tests/deps/install.sh";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `target/test-deps` of the target directory this test was built in (or
/// `STRATALOG_TEST_DEPS`).
pub fn deps_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("STRATALOG_TEST_DEPS") {
        return PathBuf::from(dir);
    }
    // target/debug/stratalog -> target
    let bin = Path::new(env!("CARGO_BIN_EXE_stratalog"));
    bin.parent()
        .and_then(Path::parent)
        .map(|t| t.join("test-deps"))
        .unwrap_or_else(|| repo().join("target/test-deps"))
}

/// Runs the installer once per process; Err holds its output if it failed.
fn install() -> &'static Result<(), String> {
    static INSTALL: OnceLock<Result<(), String>> = OnceLock::new();
    INSTALL.get_or_init(|| {
        let started = Instant::now();
        let out = Command::new("bash")
            .arg(repo().join(INSTALLER))
            .env("STRATALOG_TEST_DEPS", deps_dir())
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(out) => {
                let log = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                eprintln!(
                    "{INSTALLER} ({} ms): {}",
                    started.elapsed().as_millis(),
                    if log.is_empty() { "up to date" } else { &log }
                );
                if out.status.success() {
                    Ok(())
                } else {
                    Err(format!("{INSTALLER} failed ({}):\n{log}", out.status))
                }
            }
            Err(e) => Err(format!("could not run {INSTALLER}: {e}")),
        }
    })
}

fn install_report() -> String {
    match install() {
        Ok(()) => String::new(),
        Err(log) => format!("\n{log}"),
    }
}

fn runs(program: &Path, probe: &[&str]) -> bool {
    Command::new(program)
        .args(probe)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A program on PATH that answers `probe`, or a panic naming the Debian package.
fn system_program(name: &str, probe: &[&str], package: &str) -> PathBuf {
    let program = PathBuf::from(name);
    assert!(
        runs(&program, probe),
        "{name} not found on PATH; install with: apt-get install -y {package} \
         (.ci/run does this)"
    );
    program
}

fn missing(what: &str, hint: &str) -> ! {
    panic!(
        "{what} not found under {}; install with: bash {INSTALLER}{hint} \
         (cargo test runs it by itself, as does .ci/run){}",
        deps_dir().display(),
        install_report()
    )
}

/// A client program and the arguments that come before a test's own.
pub struct Client {
    program: PathBuf,
    args: Vec<String>,
    envs: Vec<(String, String)>,
}

impl Client {
    /// Runs the client with `args`, feeding `stdin`; panics (with both outputs) if it fails
    /// or outlives `timeout`. Returns its standard output.
    pub fn run(&self, args: &[&str], stdin: &str, timeout: Duration) -> String {
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .args(args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", self.program.display()));
        let mut input = child.stdin.take().unwrap();
        let stdin = stdin.to_string();
        let writer = std::thread::spawn(move || {
            let _ = input.write_all(stdin.as_bytes());
        });
        let reader = |mut r: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = r.read_to_end(&mut buf);
                String::from_utf8_lossy(&buf).into_owned()
            })
        };
        let stdout = reader(Box::new(child.stdout.take().unwrap()));
        let stderr = reader(Box::new(child.stderr.take().unwrap()));
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for client") {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let _ = writer.join();
        let stdout = stdout.join().unwrap();
        let stderr = stderr.join().unwrap();
        let command = format!("{} {:?} {args:?}", self.program.display(), self.args);
        match status {
            Some(s) if s.success() => {
                if !stderr.is_empty() {
                    eprintln!("---- stderr of {command} ----\n{stderr}");
                }
                stdout
            }
            Some(s) => panic!(
                "{command} failed ({s})\n---- stdout ----\n{stdout}\n---- stderr ----\n{stderr}"
            ),
            None => panic!(
                "{command} still running after {timeout:?}, killed\n---- stdout ----\n{stdout}\n\
                 ---- stderr ----\n{stderr}"
            ),
        }
    }
}

/// Debian's kcat.
pub fn kcat() -> Client {
    Client {
        program: system_program("kcat", &["-V"], "kcat"),
        args: vec![],
        envs: vec![],
    }
}

/// Python from `target/test-deps/venv`, with kafka-python.
pub fn kafka_python() -> Client {
    let _ = install();
    let python = deps_dir().join("venv/bin/python");
    if !runs(&python, &["-c", "import kafka"]) {
        missing(
            "kafka-python (venv/)",
            " (needs python3 with venv: apt-get install -y python3-venv)",
        );
    }
    Client {
        program: python,
        args: vec![],
        envs: vec![],
    }
}

fn java_level() -> String {
    std::env::var("STRATALOG_TEST_CLIENT_LOG").unwrap_or_else(|_| "warn".into())
}

/// `java` running `tests/clients/java/JavaClients.java` (compiled once into
/// `target/test-deps/java-classes/`) with the Kafka Java client's jars.
pub fn java() -> Client {
    let java = system_program("java", &["-version"], "openjdk-17-jdk-headless");
    let javac = system_program("javac", &["-version"], "openjdk-17-jdk-headless");
    let _ = install();
    let jars_dir = deps_dir().join("java");
    let mut jars: Vec<PathBuf> = std::fs::read_dir(&jars_dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "jar"))
                .collect()
        })
        .unwrap_or_default();
    jars.sort();
    if !jars.iter().any(|j| {
        j.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("kafka-clients-"))
    }) {
        missing("the Kafka Java client jars (java/)", "");
    }
    static CLASSES: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let classes = CLASSES
        .get_or_init(|| compile_java(&javac, &jars))
        .as_ref()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut classpath = jars.clone();
    classpath.push(classes.clone());
    let classpath = std::env::join_paths(classpath).unwrap();
    Client {
        program: java,
        args: vec![
            "-cp".into(),
            classpath.to_string_lossy().into_owned(),
            format!(
                "-Dlog4j2.configurationFile={}",
                repo()
                    .join("tests/clients/java/log4j2.properties")
                    .display()
            ),
            format!("-Dkafka.log.level={}", java_level()),
            "JavaClients".into(),
        ],
        envs: vec![],
    }
}

/// Compiles JavaClients.java unless the classes of this exact source are there already.
fn compile_java(javac: &Path, jars: &[PathBuf]) -> Result<PathBuf, String> {
    let source_path = repo().join("tests/clients/java/JavaClients.java");
    let source = std::fs::read(&source_path).map_err(|e| format!("{source_path:?}: {e}"))?;
    let dir = deps_dir().join("java-classes");
    if std::fs::read(dir.join("JavaClients.java")).is_ok_and(|s| s == source)
        && dir.join("JavaClients.class").exists()
    {
        return Ok(dir);
    }
    let tmp = deps_dir().join(format!("java-classes.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    let classpath = std::env::join_paths(jars).unwrap();
    let out = Command::new(javac)
        .arg("-cp")
        .arg(&classpath)
        .arg("-d")
        .arg(&tmp)
        .arg(&source_path)
        .output()
        .map_err(|e| format!("javac: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "javac {source_path:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    std::fs::write(tmp.join("JavaClients.java"), &source).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&tmp, &dir).map_err(|e| format!("rename {tmp:?} -> {dir:?}: {e}"))?;
    Ok(dir)
}

/// `node` running `tests/clients/node/kafkajs_clients.js` with kafkajs from
/// `target/test-deps/node`.
pub fn kafkajs() -> Client {
    let node = system_program("node", &["--version"], "nodejs npm");
    let _ = install();
    let modules = deps_dir().join("node/node_modules");
    if !modules.join("kafkajs/package.json").exists() {
        missing(
            "kafkajs (node/)",
            " (needs npm: apt-get install -y nodejs npm)",
        );
    }
    Client {
        program: node,
        args: vec![repo()
            .join("tests/clients/node/kafkajs_clients.js")
            .display()
            .to_string()],
        envs: vec![("NODE_PATH".into(), modules.display().to_string())],
    }
}

/// The lines of `out` that do not start with any of `skip`.
pub fn lines_without<'a>(out: &'a str, skip: &[&str]) -> Vec<&'a str> {
    out.lines()
        .filter(|l| !skip.iter().any(|s| l.starts_with(s)))
        .collect()
}

/// The consumer-group story the Java and kafkajs programs both tell, as `{name}-group` with
/// members `{name}-g`: member a alone, then b joins (a and b split the four partitions), a
/// leaves (b takes all), b stops after exactly 550 of 600 records. The server is killed and
/// restarted; a new member resumes from the committed offsets and gets the other 50 and 100
/// new ones, none lost, none repeated, and its commits then cover all 700 (`last_line`).
/// Lines starting with one of `noise` are ignored.
pub fn group_rebalances_and_resumes(client: &Client, name: &str, noise: &[&str], last_line: &str) {
    const TIMEOUT: Duration = Duration::from_secs(180);
    let mut server = crate::harness::Standalone::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("processed.txt");
    let file = file.to_str().unwrap();
    let (group, member) = (format!("{name}-group"), format!("{name}-g"));
    let run = |server: &crate::harness::Standalone, step: &str| {
        client.run(
            &[&server.bootstrap(), step, &group, &member, file],
            "",
            TIMEOUT,
        )
    };

    let first = run(&server, "group-first");
    let lines = lines_without(&first, noise);
    assert_eq!(lines.len(), 7, "{first}");
    assert_eq!(lines[0], "alone a=0,1,2,3");
    assert_split(lines[1]);
    assert_eq!(
        &lines[2..],
        [
            "both-processed=true",
            "left b=0,1,2,3",
            "processed=550 distinct=550",
            "committed-partitions=4 committed-sum=550",
            "group state=Empty members=0",
        ]
    );

    server.process.restart();
    let resumed = run(&server, "group-resume");
    assert_eq!(
        lines_without(&resumed, noise),
        [
            "committed-partitions=4 committed-sum=550",
            "resumed=150 repeated=0 lost=0 unknown=0",
            last_line,
        ]
    );
}

/// `joined a=P,Q b=R,S`: two partitions each, disjoint, together all four.
fn assert_split(line: &str) {
    let parts: Vec<Vec<i32>> = line
        .strip_prefix("joined ")
        .unwrap_or_else(|| panic!("not a join line: {line}"))
        .split(' ')
        .map(|m| {
            m.split_once('=')
                .unwrap()
                .1
                .split(',')
                .map(|p| p.parse().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(parts.len(), 2, "{line}");
    assert_eq!((parts[0].len(), parts[1].len()), (2, 2), "{line}");
    let mut all: Vec<i32> = parts.concat();
    all.sort();
    assert_eq!(all, [0, 1, 2, 3], "{line}");
}
