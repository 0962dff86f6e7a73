//! The one type that holds a registry password or token in memory, and the ways a process
//! keeps the memory that holds one to itself.

use std::fmt;
use std::io::{self, Read};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

/// A password, access token or identity token.
///
/// It has no `Display`, its `Debug` prints `REDACTED`, and its memory is wiped on drop.
/// [`Secret::expose`] is the one way to read it: grep for `expose()` to find every place a
/// secret leaves this type.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a secret; the `String` moves in and is wiped when the `Secret` is dropped.
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }

    /// The secret's text.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Takes the text in `bytes` without copying it; bytes that are not UTF-8 are wiped too.
    pub fn from_utf8(mut bytes: Zeroizing<Vec<u8>>) -> Result<Self, std::str::Utf8Error> {
        match String::from_utf8(std::mem::take(&mut *bytes)) {
            Ok(text) => Ok(Self::new(text)),
            Err(e) => {
                let error = e.utf8_error();
                drop(Zeroizing::new(e.into_bytes()));
                Err(error)
            }
        }
    }
}

/// Reading input that may hold a secret failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadSecretError {
    /// The input went on past the limit.
    #[error("input larger than {limit} bytes")]
    TooLarge {
        /// The most bytes accepted.
        limit: usize,
    },
    /// The input could not be read.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Reads `input` to its end, at most `limit` bytes, into memory that is wiped when dropped.
///
/// `read_to_end` into a growing `Vec` frees each outgrown buffer with the bytes read so far
/// still in it; here each one is wiped before it is freed.
pub fn read_to_end_wiped(mut input: impl Read, limit: usize) -> Result<Zeroizing<Vec<u8>>, ReadSecretError> {
    let mut buffer = Zeroizing::new(vec![0; limit.saturating_add(1).min(8 * 1024)]);
    let mut len = 0;
    loop {
        if len == buffer.len() {
            if len > limit {
                return Err(ReadSecretError::TooLarge { limit });
            }
            let mut bigger = Zeroizing::new(vec![0; len.saturating_mul(2).min(limit.saturating_add(1))]);
            bigger[..len].copy_from_slice(&buffer[..len]);
            buffer = bigger;
        }
        match input.read(&mut buffer[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    buffer.truncate(len);
    Ok(buffer)
}

/// Closes this process's memory to everyone but root: no core dump (a crash would write the
/// secrets it holds to disk), no ptrace and no `/proc/PID/mem` or `/proc/PID/environ` for other
/// processes of the same user (`prctl(PR_SET_DUMPABLE, 0)`). It lasts until the process
/// executes another program. A process that will hold secrets calls it first.
pub fn keep_memory_private() -> io::Result<()> {
    #[cfg(target_os = "linux")]
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)?;
    Ok(())
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(REDACTED)")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.expose())
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::new("hunter2".into());
        assert_eq!(format!("{secret:?}"), "Secret(REDACTED)");
        assert_eq!(format!("{:?}", Some(&secret)), "Some(Secret(REDACTED))");
    }

    #[test]
    fn expose_returns_the_value() {
        assert_eq!(Secret::new("tøken".into()).expose(), "tøken");
    }

    /// A reader that hands out at most `chunk` bytes per call, as a pipe does.
    struct Trickle<'a> {
        data: &'a [u8],
        chunk: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.data.len().min(self.chunk).min(buf.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn reads_everything_up_to_the_limit_whatever_the_chunks() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        for chunk in [1, 7, 4096, 8192, 100_000] {
            let read = read_to_end_wiped(Trickle { data: &data, chunk }, data.len()).unwrap();
            assert_eq!(&read[..], &data[..], "chunk {chunk}");
        }
        assert!(read_to_end_wiped(&b""[..], 10).unwrap().is_empty());
        assert_eq!(&read_to_end_wiped(&b"0123456789"[..], 10).unwrap()[..], b"0123456789");
    }

    #[test]
    fn input_past_the_limit_is_refused() {
        let data = vec![b'x'; 20_000];
        for limit in [0, 1, 8191, 8192, 19_999] {
            assert!(
                matches!(
                    read_to_end_wiped(Trickle { data: &data, chunk: 3000 }, limit),
                    Err(ReadSecretError::TooLarge { limit: l }) if l == limit
                ),
                "limit {limit}"
            );
        }
    }

    #[test]
    fn from_utf8_takes_text_and_refuses_the_rest() {
        let secret = Secret::from_utf8(Zeroizing::new("pä55".as_bytes().to_vec())).unwrap();
        assert_eq!(secret.expose(), "pä55");
        assert!(Secret::from_utf8(Zeroizing::new(vec![b'a', 0xff])).is_err());
    }
}
