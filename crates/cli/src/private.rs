//! The data directory is the service's alone: umask `077` for the whole process, the directory
//! `0700`, every file in it `0600`, as PostgreSQL insists for its own. The token secret and the
//! master key of personal data are written atomically and refused when short, malformed or
//! readable by anyone but their owner.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use leadflow_codec::seal::MasterKey;

/// The token secret's file name in the data directory.
pub const SECRET_FILE: &str = "jwt.secret";
/// The shortest secret accepted, from the file or `LEADFLOW_JWT_SECRET`.
pub const MIN_SECRET_BYTES: usize = 32;
/// The master key's file name in the data directory (issue 20: it wraps every data subject's
/// key; keep a copy apart from the data, as losing it loses every personal value).
pub const MASTER_KEY_FILE: &str = "master.key";

/// Every file this process creates from now on is `0600` and every directory `0700`,
/// SQLite's database, WAL and shared-memory files included.
pub fn restrict_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// Creates the data directory `0700` if needed; in an existing one, tightens any file or
/// directory that group or others may use, with a warning for each. The secret is left as it
/// is: one that others could read may have been copied, so [`load_secret`] refuses it.
pub fn prepare(data_dir: &Path) -> anyhow::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    // The directory itself may be a link (`/var/lib/leadflow -> /srv/...`): follow that one.
    let root = fs::canonicalize(data_dir)
        .with_context(|| format!("cannot resolve {}", data_dir.display()))?;
    tighten(&root)
}

/// Makes a file the service's alone (`0600`), whatever it was copied from.
pub fn restrict(path: &Path) -> anyhow::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict {}", path.display()))
}

/// Tightens `path` and what is under it; links inside are left alone (they may point anywhere).
fn tighten(path: &Path) -> anyhow::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        // Gone while we looked (a running server's SQLite journal comes and goes).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read the mode of {}", path.display()))
        }
    };
    if meta.file_type().is_symlink() || path.file_name() == Some(SECRET_FILE.as_ref()) {
        return Ok(());
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        let tightened = mode & 0o700;
        match fs::set_permissions(path, fs::Permissions::from_mode(tightened)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            done => done.with_context(|| format!("cannot tighten {}", path.display()))?,
        }
        tracing::warn!(
            "{} was {mode:04o}: readable by other local accounts; now {tightened:04o}",
            path.display()
        );
    }
    if meta.is_dir() {
        let entries = match fs::read_dir(path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", path.display())),
        };
        for entry in entries {
            tighten(&entry?.path())?;
        }
    }
    Ok(())
}

/// The secret's path in `data_dir`.
pub fn secret_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SECRET_FILE)
}

/// The token secret: `LEADFLOW_JWT_SECRET`, else the data directory's secret file, created on
/// first use. A file that group or others can read, or shorter than 32 bytes, is refused.
pub fn load_secret(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    if let Ok(secret) = std::env::var("LEADFLOW_JWT_SECRET") {
        if secret.len() < MIN_SECRET_BYTES {
            bail!("LEADFLOW_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes");
        }
        return Ok(secret.into_bytes());
    }
    let path = secret_path(data_dir);
    if !path.exists() {
        // Two first starts at once: whichever lands first is the secret, both read it.
        write_secret(data_dir, false)?;
    }
    refuse_if_readable(&path, "sign tokens", " and rotate it (docs/security.md)")?;
    let secret = fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let secret = secret.trim_ascii().to_vec();
    if secret.len() < MIN_SECRET_BYTES {
        bail!(
            "{} holds {} bytes; a token secret needs at least {MIN_SECRET_BYTES}: remove it (a new one is made) or write a longer one",
            path.display(),
            secret.len()
        );
    }
    Ok(secret)
}

/// Refuses a key file group or others can read: it may have been copied, so `chmod 600` alone
/// is not enough (what anyone could then do with it and what else to do are in the message).
fn refuse_if_readable(path: &Path, could: &str, then: &str) -> anyhow::Result<()> {
    let mode = fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        bail!(
            "{} is readable by other local accounts (mode {:04o}), so anyone on this machine could {could}: run `chmod 600 {}`{then}",
            path.display(),
            mode & 0o777,
            path.display()
        );
    }
    Ok(())
}

/// Writes a fresh random secret (256 bits, hex): a temporary file in the same directory,
/// fsync, rename over the old one, fsync the directory, so a crash or a full disk leaves the
/// old secret or the new one, never an empty file.
pub fn write_new_secret(data_dir: &Path) -> anyhow::Result<PathBuf> {
    write_secret(data_dir, true)
}

/// Writes a fresh secret; over an existing one only if `replace`.
fn write_secret(data_dir: &Path, replace: bool) -> anyhow::Result<PathBuf> {
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    write_private(data_dir, SECRET_FILE, &secret, replace)
}

/// Writes `contents` to `data_dir/name`, `0600`: a temporary file in the same directory, fsync,
/// rename (over an existing file only if `replace`), fsync of the directory, so a crash or a
/// full disk leaves the old file or the new one, never an empty one.
fn write_private(
    data_dir: &Path,
    name: &str,
    contents: &str,
    replace: bool,
) -> anyhow::Result<PathBuf> {
    let path = data_dir.join(name);
    let mut file = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(data_dir)
        .with_context(|| format!("cannot create a file in {}", data_dir.display()))?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.as_file().sync_all())
        .with_context(|| format!("cannot write {name} in {}", data_dir.display()))?;
    let persisted = if replace {
        file.persist(&path).map(drop)
    } else {
        match file.persist_noclobber(&path) {
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            other => other.map(drop),
        }
    };
    persisted.with_context(|| format!("cannot move the new {name} to {}", path.display()))?;
    fs::File::open(data_dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync {}", data_dir.display()))?;
    Ok(path)
}

/// The master key of personal data: `LEADFLOW_MASTER_KEY` (64 hex digits), else the data
/// directory's `master.key`, created on first use. A file that group or others can read is
/// refused (the key may have been copied), as is one that does not hold a key, with what to do.
pub fn load_master_key(data_dir: &Path, create: bool) -> anyhow::Result<Option<MasterKey>> {
    if let Ok(hex) = std::env::var("LEADFLOW_MASTER_KEY") {
        return MasterKey::parse_hex(&hex)
            .context("LEADFLOW_MASTER_KEY")
            .map(Some);
    }
    let path = data_dir.join(MASTER_KEY_FILE);
    if !path.exists() {
        if !create {
            return Ok(None);
        }
        let key = MasterKey::generate()?;
        write_private(data_dir, MASTER_KEY_FILE, &key.to_hex(), false)?;
    }
    refuse_if_readable(&path, "read every person's data", " (docs/privacy.md)")?;
    let text =
        fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    MasterKey::parse_hex(&text)
        .with_context(|| {
            format!(
                "{} does not hold a master key; restore it from your copy (a new one cannot read what the old one wrapped)",
                path.display()
            )
        })
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_loose_directory_is_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        fs::create_dir_all(data.join("read")).unwrap();
        fs::write(data.join("events.db"), b"x").unwrap();
        fs::set_permissions(&data, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(data.join("read"), fs::Permissions::from_mode(0o775)).unwrap();
        fs::set_permissions(data.join("events.db"), fs::Permissions::from_mode(0o644)).unwrap();
        prepare(&data).unwrap();
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("read")), 0o700);
        assert_eq!(mode(&data.join("events.db")), 0o600);

        fs::write(secret_path(&data), [b'k'; 40]).unwrap();
        fs::set_permissions(secret_path(&data), fs::Permissions::from_mode(0o640)).unwrap();
        prepare(&data).unwrap();
        assert_eq!(
            mode(&secret_path(&data)),
            0o640,
            "left for load_secret to refuse"
        );
    }

    #[test]
    fn a_new_secret_is_private_and_long_enough() {
        let dir = tempfile::tempdir().unwrap();
        let secret = load_secret(dir.path()).unwrap();
        assert_eq!(secret.len(), 64);
        assert_eq!(mode(&secret_path(dir.path())), 0o600);
        assert_eq!(
            load_secret(dir.path()).unwrap(),
            secret,
            "kept on the next load"
        );
        let rotated = write_new_secret(dir.path()).unwrap();
        assert_ne!(fs::read(rotated).unwrap(), secret);
    }

    #[test]
    fn the_master_key_is_made_once_private_and_refused_when_readable_or_malformed() {
        let dir = tempfile::tempdir().unwrap();
        // A store that already holds sealed data never gets a new key made up for it.
        assert!(load_master_key(dir.path(), false).unwrap().is_none());
        let first = load_master_key(dir.path(), true).unwrap().unwrap();
        let path = dir.path().join(MASTER_KEY_FILE);
        assert_eq!(mode(&path) & 0o777, 0o600);
        assert_eq!(
            load_master_key(dir.path(), true).unwrap().unwrap().to_hex(),
            first.to_hex(),
            "made once"
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let e = load_master_key(dir.path(), false).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&path, b"not a key").unwrap();
        let e = format!("{:#}", load_master_key(dir.path(), false).unwrap_err());
        assert!(e.contains("restore it from your copy"), "{e}");
        assert!(e.contains("64 hex digits"), "{e}");
        assert!(!e.contains(&first.to_hex()), "an error never shows a key");
    }

    #[test]
    fn a_short_or_readable_secret_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = secret_path(dir.path());
        fs::write(&path, b"short").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let e = load_secret(dir.path()).unwrap_err().to_string();
        assert!(e.contains("holds 5 bytes"), "{e}");
        fs::write(&path, b"").unwrap();
        assert!(load_secret(dir.path()).is_err());
        fs::write(&path, [b'k'; 40]).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let e = load_secret(dir.path()).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
    }
}
