//! The password file, as libpq reads it (`~/.pgpass`, or `$PGPASSFILE`, or the URL's
//! `passfile`): lines `host:port:database:user:password`, `*` matching anything in the
//! first four fields, `\:` and `\\` escaping, `#` starting a comment. The first line
//! that matches gives the password. A file that is not a plain file, or that its group
//! or others may read, is ignored with a warning. The password is never shown.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// What is looked up: the host as libpq names it (a Unix socket's directory, or
/// `localhost` for the default one), the port, the database and the user.
pub(super) struct Key<'a> {
    pub(super) host: &'a str,
    pub(super) port: u16,
    pub(super) dbname: &'a str,
    pub(super) user: &'a str,
}

/// The lines of a password file: read once, then looked up.
pub(super) struct File {
    text: String,
}

impl File {
    /// Reads the file at `path`; `None` when it is missing, unreadable or ignored, with
    /// the warning to give for an ignored one.
    pub(super) fn read(path: &Path) -> (Option<File>, Option<String>) {
        let Ok(meta) = std::fs::metadata(path) else {
            return (None, None);
        };
        let shown = path.display();
        if !meta.is_file() {
            return (
                None,
                Some(format!("password file \"{shown}\" is not a plain file")),
            );
        }
        if meta.permissions().mode() & 0o077 != 0 {
            return (
                None,
                Some(format!(
                    "password file \"{shown}\" has group or world access; permissions \
                     should be u=rw (0600) or less: ignored"
                )),
            );
        }
        match std::fs::read(path) {
            Ok(bytes) => (
                Some(File {
                    text: String::from_utf8_lossy(&bytes).into_owned(),
                }),
                None,
            ),
            Err(_) => (None, None),
        }
    }

    /// A file of `text`, for tests.
    #[cfg(test)]
    pub(super) fn of(text: &str) -> File {
        File { text: text.into() }
    }

    /// The password of the first line matching `key`.
    pub(super) fn lookup(&self, key: &Key<'_>) -> Option<String> {
        let port = key.port.to_string();
        let wanted = [key.host, port.as_str(), key.dbname, key.user];
        for line in self.text.lines() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields = split(line);
            if fields.len() < 5 {
                continue;
            }
            let matches = wanted
                .iter()
                .zip(&fields)
                .all(|(want, field)| field == "*" || field == want);
            if matches {
                return Some(fields[4].clone());
            }
        }
        None
    }
}

/// The fields of a line, unescaped (a colon in a password is escaped too, as libpq
/// reads it).
fn split(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut().expect("one field").push(next);
                }
            }
            ':' => fields.push(String::new()),
            c => fields.last_mut().expect("one field").push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key<'a>(host: &'a str, port: u16, dbname: &'a str, user: &'a str) -> Key<'a> {
        Key {
            host,
            port,
            dbname,
            user,
        }
    }

    #[test]
    fn first_matching_line_wins() {
        let file = File::of(
            "# comment\n\
             db.example:5432:app:alice:first\n\
             *:*:*:alice:second\n\
             *:*:*:*:third\r\n",
        );
        let found = |k| file.lookup(&k);
        assert_eq!(
            found(key("db.example", 5432, "app", "alice")).as_deref(),
            Some("first")
        );
        assert_eq!(
            found(key("db.example", 5433, "app", "alice")).as_deref(),
            Some("second")
        );
        assert_eq!(found(key("other", 1, "x", "bob")).as_deref(), Some("third"));
        assert_eq!(File::of("h:1:d:u\n").lookup(&key("h", 1, "d", "u")), None);
    }

    #[test]
    fn escapes_and_colons() {
        let file = File::of("/tmp/a\\:b:5432:d:u:pa\\:ss\\\\w:rd\n");
        assert_eq!(
            file.lookup(&key("/tmp/a:b", 5432, "d", "u")).as_deref(),
            Some("pa:ss\\w")
        );
        assert_eq!(file.lookup(&key("/tmp/a", 5432, "d", "u")), None);
    }
}
