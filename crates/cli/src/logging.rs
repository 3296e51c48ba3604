//! Logs: human-readable lines or JSON, filtered by the config's level or `RUST_LOG`, on
//! standard error, standard output or a file. A file is opened again on SIGUSR1, so log
//! rotation (logrotate's `postrotate`, `kill -USR1`) needs no `copytruncate`.

use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use socksgate_config::{Log, LogFormat, LogOutput};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// The log file, when logs go to one (set once, at start).
static LOG_FILE: OnceLock<LogFile> = OnceLock::new();

/// Starts logging; an error names a log file that cannot be opened.
pub(crate) fn init(log: &Log) -> io::Result<()> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let writer = match &log.output {
        LogOutput::Stderr => Output::Stderr,
        LogOutput::Stdout => Output::Stdout,
        LogOutput::File(path) => {
            let file = LogFile::open(path)?;
            Output::File(LOG_FILE.get_or_init(|| file))
        }
    };
    let ansi = match writer {
        Output::Stderr => io::stderr().is_terminal(),
        Output::Stdout => io::stdout().is_terminal(),
        Output::File(_) => false,
    };
    let builder = builder.with_writer(writer).with_ansi(ansi);
    match log.format {
        LogFormat::Human => builder.init(),
        // Without tracing's own `target` (the module): it would repeat the key of the
        // access event's `target` field, the SOCKS destination, in the same object.
        LogFormat::Json => builder.json().flatten_event(true).with_target(false).init(),
    }
    Ok(())
}

/// Opens the log file again (after rotation); a no-op without one. On failure logging goes
/// on into the file already open.
pub(crate) fn reopen() {
    let Some(file) = LOG_FILE.get() else {
        return;
    };
    match file.reopen() {
        Ok(()) => tracing::info!(path = %file.path.display(), "log file reopened"),
        Err(error) => {
            tracing::error!(path = %file.path.display(), %error, "cannot reopen the log file")
        }
    }
}

/// Where each event is written.
#[derive(Clone, Copy)]
enum Output {
    Stderr,
    Stdout,
    File(&'static LogFile),
}

impl<'a> MakeWriter<'a> for Output {
    type Writer = Box<dyn Write + 'a>;

    fn make_writer(&'a self) -> Self::Writer {
        match self {
            Self::Stderr => Box::new(io::stderr()),
            Self::Stdout => Box::new(io::stdout()),
            Self::File(file) => Box::new(*file),
        }
    }
}

/// A log file that can be opened again under the same name.
struct LogFile {
    path: PathBuf,
    file: Mutex<File>,
}

impl LogFile {
    fn open(path: &Path) -> io::Result<Self> {
        Ok(Self {
            path: path.to_path_buf(),
            file: Mutex::new(append(path)?),
        })
    }

    fn reopen(&self) -> io::Result<()> {
        let fresh = append(&self.path)?;
        *self.file.lock().unwrap_or_else(PoisonError::into_inner) = fresh;
        Ok(())
    }
}

/// Opens the log for appending; a new file is made readable by its owner and group only
/// (sessions name clients, users and targets), whatever the umask.
fn append(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
        .map_err(|error| io::Error::new(error.kind(), format!("{}: {error}", path.display())))
}

/// Each event is formatted whole and then written in one call, under the lock.
impl Write for &LogFile {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write(bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
