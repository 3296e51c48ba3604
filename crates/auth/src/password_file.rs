//! A password file in Apache's htpasswd format (`user:hash`, one per line), with an optional
//! group file in Apache's AuthGroupFile format (`group: user1 user2 …`). Both are reloaded
//! when they change on disk; a reload that fails keeps the previous contents and logs why.

use std::collections::HashMap;
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{PoisonError, RwLock};
use std::time::SystemTime;

use socksgate_proto::Method;

use crate::hash::PasswordHash;
use crate::{user_name, Authenticator, Credentials, GroupsOf, Identity, Refusal};

/// A password or group file that cannot be used, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    /// The file.
    pub path: PathBuf,
    /// The 1-based line, when the problem is on one.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for FileError {}

/// What identifies one version of a file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl Stamp {
    fn of(path: &Path) -> Option<Self> {
        let metadata = std::fs::metadata(path).ok()?;
        Some(Self {
            modified: metadata.modified().ok(),
            len: metadata.len(),
            inode: metadata.ino(),
        })
    }
}

#[derive(Debug, Default)]
struct Loaded {
    stamps: (Option<Stamp>, Option<Stamp>),
    users: HashMap<String, PasswordHash>,
    groups: HashMap<String, Vec<String>>,
}

/// Users from a password file.
#[derive(Debug)]
pub struct PasswordFile {
    path: PathBuf,
    group_path: Option<PathBuf>,
    allow_plaintext: bool,
    loaded: RwLock<Loaded>,
}

impl PasswordFile {
    /// Reads the password file (and group file); any error names the file and line.
    pub fn open(
        path: &Path,
        group_path: Option<&Path>,
        allow_plaintext: bool,
    ) -> Result<Self, FileError> {
        let file = Self {
            path: path.to_path_buf(),
            group_path: group_path.map(Path::to_path_buf),
            allow_plaintext,
            loaded: RwLock::default(),
        };
        let loaded = file.load()?;
        *file.loaded.write().unwrap_or_else(PoisonError::into_inner) = loaded;
        Ok(file)
    }

    /// How many users the file holds now.
    pub fn len(&self) -> usize {
        self.read().users.len()
    }

    /// Whether the file holds no user.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Loaded> {
        self.loaded.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn load(&self) -> Result<Loaded, FileError> {
        let stamps = (
            Stamp::of(&self.path),
            self.group_path.as_deref().and_then(Stamp::of),
        );
        let users = parse_users(&self.path, &read(&self.path)?, self.allow_plaintext)?;
        let groups = match &self.group_path {
            Some(path) => parse_groups(&read(path)?),
            None => HashMap::new(),
        };
        Ok(Loaded {
            stamps,
            users,
            groups,
        })
    }

    /// Reloads if either file changed; keeps the old contents if the new ones are invalid.
    fn refresh(&self) {
        let current = (
            Stamp::of(&self.path),
            self.group_path.as_deref().and_then(Stamp::of),
        );
        if current == self.read().stamps {
            return;
        }
        match self.load() {
            Ok(loaded) => {
                tracing::info!(path = %self.path.display(), users = loaded.users.len(), "password file reloaded");
                *self.loaded.write().unwrap_or_else(PoisonError::into_inner) = loaded;
            }
            Err(error) => {
                tracing::error!(%error, "password file not reloaded; keeping the previous one");
                // Do not retry on every login until the file changes again.
                self.loaded
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .stamps = current;
            }
        }
    }
}

impl Authenticator for PasswordFile {
    fn verify(&self, credentials: &Credentials) -> Result<Identity, Refusal> {
        self.refresh();
        let user = user_name(credentials)?;
        let loaded = self.read();
        let Some(hash) = loaded.users.get(user) else {
            // Spend the time a real check takes, so answers do not reveal who exists.
            if let Some(any) = loaded.users.values().next() {
                any.verify(credentials.password());
            }
            return Err(Refusal::UnknownUser);
        };
        if !hash.verify(credentials.password()) {
            return Err(Refusal::WrongPassword);
        }
        Ok(Identity {
            user: user.to_owned(),
            groups: loaded.groups.get(user).cloned().unwrap_or_default(),
            method: Method::PASSWORD,
        })
    }

    fn groups_of(&self, user: &str) -> Option<GroupsOf> {
        self.refresh();
        let source = match &self.group_path {
            Some(path) => format!("the group file {}", path.display()),
            None => "nowhere: auth.group_file is not set".to_owned(),
        };
        Some(GroupsOf {
            groups: self.read().groups.get(user).cloned().unwrap_or_default(),
            source,
        })
    }
}

fn read(path: &Path) -> Result<String, FileError> {
    std::fs::read_to_string(path).map_err(|error| FileError {
        path: path.to_path_buf(),
        line: None,
        message: format!("cannot read: {error}"),
    })
}

fn parse_users(
    path: &Path,
    text: &str,
    allow_plaintext: bool,
) -> Result<HashMap<String, PasswordHash>, FileError> {
    let mut users = HashMap::new();
    let mut first_seen = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        let line_number = index + 1;
        let error = |message: String| FileError {
            path: path.to_path_buf(),
            line: Some(line_number),
            message,
        };
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((user, stored)) = line.split_once(':') else {
            return Err(error("expected USER:HASH".to_owned()));
        };
        if user.is_empty() {
            return Err(error("empty user name".to_owned()));
        }
        let hash = PasswordHash::parse(stored, allow_plaintext)
            .map_err(|why| error(format!("user {user}: {why}")))?;
        if let Some(first) = first_seen.insert(user.to_owned(), line_number) {
            return Err(error(format!(
                "user {user} appears again (first on line {first})"
            )));
        }
        users.insert(user.to_owned(), hash);
    }
    Ok(users)
}

/// `group: user1 user2` lines → each user's groups.
fn parse_groups(text: &str) -> HashMap<String, Vec<String>> {
    let mut groups: HashMap<String, Vec<String>> = HashMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((group, members)) = line.split_once(':') {
            for member in members.split_whitespace() {
                groups
                    .entry(member.to_owned())
                    .or_default()
                    .push(group.trim().to_owned());
            }
        }
    }
    groups
}
